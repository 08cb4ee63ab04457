#!/usr/bin/env bash
# Bit-identity check of the solver, by hand, before and after a change that must not move a bit:
#
#   tests/tools/bitcheck.sh OLD_BINARY /tmp/before
#   tests/tools/bitcheck.sh target/release/aquatwin /tmp/after
#   diff -rq /tmp/before /tmp/after        # no output: every result is the same to the byte
#
# Writes the results JSON of every network in NETWORKS (default ../shared/networks), extended
# period and `--steady`, and of each network forced to pressure-driven demands (0-20, exponents
# 0.5 and 0.75), into OUTDIR. Networks that fail to read leave a `.failed` marker (the broken
# examples do so on purpose).
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 BINARY OUTDIR [NETWORKS]" >&2
    exit 2
fi
bin=$1
out=$2
networks=${3:-../shared/networks}
mkdir -p "$out/inp"
for net in "$networks"/*.inp; do
    name=$(basename "$net" .inp)
    "$bin" simulate "$net" --out "$out/$name.json" >/dev/null 2>&1 || echo failed > "$out/$name.failed"
    "$bin" simulate "$net" --steady --out "$out/$name.steady.json" >/dev/null 2>&1 ||
        echo failed > "$out/$name.steady.failed"
    for exp in 0.5 0.75; do
        pda="$out/inp/${name}_pda$exp.inp"
        # The PDA keys go first in [OPTIONS] (a section of their own on top when there is none);
        # a file's own demand model keys, later, still win.
        if grep -qi '^[[:space:]]*\[OPTIONS\]' "$net"; then
            awk -v e="$exp" 'BEGIN { IGNORECASE = 1; done = 0 }
                { print }
                /^[ \t]*\[OPTIONS\]/ && !done {
                    print "DEMAND MODEL PDA\nMINIMUM PRESSURE 0\nREQUIRED PRESSURE 20\nPRESSURE EXPONENT " e
                    done = 1
                }' "$net" > "$pda"
        else
            { printf '[OPTIONS]\nDEMAND MODEL PDA\nMINIMUM PRESSURE 0\nREQUIRED PRESSURE 20\nPRESSURE EXPONENT %s\n\n' "$exp"; cat "$net"; } > "$pda"
        fi
        "$bin" simulate "$pda" --out "$out/${name}_pda$exp.json" >/dev/null 2>&1 ||
            echo failed > "$out/${name}_pda$exp.failed"
    done
done
rm -rf "$out/inp"
echo "$(ls "$out" | wc -l) documents in $out"
