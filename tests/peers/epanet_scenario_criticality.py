#!/usr/bin/env python3
"""Times EPANET 2.3 (the PyPI package owa-epanet) on a pipe-closure criticality loop, for
`aquatwin criticality --bench`.

Usage: epanet_scenario_criticality.py NET.inp PIPES.txt

The project is opened once; for each pipe id in PIPES.txt (one per line) the pipe's initial
status is set to closed, the whole hydraulic simulation runs (ENsolveH, with the network's own
duration and demand model), and the status is restored. The loop is timed with
time.perf_counter. Prints one JSON object: {"count", "total_s", "per_scenario_s", "epanet"}.
"""
import json
import os
import sys
import tempfile
import time

try:
    from epanet import toolkit as en
except ImportError:
    sys.exit("epanet_scenario_criticality.py: owa-epanet is not installed (pip install owa-epanet)")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    inp, pipes_file = sys.argv[1], sys.argv[2]
    with open(pipes_file) as f:
        pipes = [line.strip() for line in f if line.strip()]
    project = en.createproject()
    with tempfile.TemporaryDirectory() as scratch:
        en.open(project, inp, os.path.join(scratch, "loop.rpt"), "")
        indices = [en.getlinkindex(project, pipe) for pipe in pipes]
        started = time.perf_counter()
        for index in indices:
            before = en.getlinkvalue(project, index, en.INITSTATUS)
            en.setlinkvalue(project, index, en.INITSTATUS, en.CLOSED)
            try:
                en.solveH(project)
            except Exception:
                # A failed run (e.g. unbalanced with UNBALANCED STOP) still costs its time.
                pass
            en.setlinkvalue(project, index, en.INITSTATUS, before)
        total = time.perf_counter() - started
        en.close(project)
    en.deleteproject(project)
    print(json.dumps({
        "count": len(indices),
        "total_s": total,
        "per_scenario_s": total / max(len(indices), 1),
        "epanet": "owa-epanet",
    }))


if __name__ == "__main__":
    main()
