#!/usr/bin/env python3
"""Times EPANET 2.3 (the PyPI package owa-epanet) on .inp networks, for `aquatwin bench`.

Usage: epanet_bench.py [--repeat N] [--steady] NET.inp...

For each network, N times: ENopen (timed as `open_s`: parsing and building the network), then
ENsolveH (timed as `solve_s`: the whole hydraulic simulation, extended period unless --steady
sets the duration to 0), both with time.perf_counter inside Python. Prints one JSON object per
network with the medians and the fastest solve: {"network", "path", "repeat", "open_s",
"solve_s", "fastest_solve_s", "epanet"}.
Install the solver with `pip install owa-epanet`.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings

try:
    from epanet import toolkit as en
except ImportError:
    sys.exit("epanet_bench.py: owa-epanet is not installed (pip install owa-epanet)")


def run_once(path, steady, scratch):
    project = en.createproject()
    report = os.path.join(scratch, "bench.rpt")
    try:
        started = time.perf_counter()
        en.open(project, path, report, "")
        opened = time.perf_counter()
        if steady:
            en.settimeparam(project, en.DURATION, 0)
        solve_started = time.perf_counter()
        en.solveH(project)
        solved = time.perf_counter()
        en.close(project)
    finally:
        en.deleteproject(project)
    return opened - started, solved - solve_started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("networks", nargs="+")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steady", action="store_true")
    args = parser.parse_args()
    # EPANET's own warnings (e.g. a pump exceeding its curve) are part of normal runs here.
    warnings.simplefilter("ignore")
    with tempfile.TemporaryDirectory() as scratch:
        for path in args.networks:
            timings = [run_once(path, args.steady, scratch) for _ in range(max(1, args.repeat))]
            print(json.dumps({
                "network": os.path.splitext(os.path.basename(path))[0],
                "path": path,
                "repeat": len(timings),
                "open_s": statistics.median(t[0] for t in timings),
                "solve_s": statistics.median(t[1] for t in timings),
                "fastest_solve_s": min(t[1] for t in timings),
                "epanet": "owa-epanet",
            }), flush=True)


if __name__ == "__main__":
    main()
