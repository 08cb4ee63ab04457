#!/usr/bin/env python3
"""Runs EPANET 2.3 (the PyPI package owa-epanet) on an .inp file and writes every hydraulic step
in the results layout of shared/design.md section 4, for tests that need references beyond
../shared/reference.

Usage: epanet_results.py NET.inp OUT.json

`status` is EPANET's EN_STATUS: 0 closed, 1 open, 2 active (as in ../shared/reference).
"""
import json
import os
import sys
import tempfile

try:
    from epanet import toolkit as en
except ImportError:
    sys.exit("epanet_results.py: owa-epanet is not installed (pip install owa-epanet)")


def run(inp, out):
    project = en.createproject()
    with tempfile.TemporaryDirectory() as scratch:
        en.open(project, inp, os.path.join(scratch, "report.rpt"), "")
        nodes = range(1, en.getcount(project, en.NODECOUNT) + 1)
        links = range(1, en.getcount(project, en.LINKCOUNT) + 1)
        report_step = en.gettimeparam(project, en.REPORTSTEP)
        report_start = en.gettimeparam(project, en.REPORTSTART)
        en.openH(project)
        en.initH(project, 0)
        steps = []
        while True:
            t = en.runH(project)
            steps.append({
                "t": t,
                "report": t >= report_start and (t - report_start) % report_step == 0,
                "head": [en.getnodevalue(project, i, en.HEAD) for i in nodes],
                "pressure": [en.getnodevalue(project, i, en.PRESSURE) for i in nodes],
                "demand": [en.getnodevalue(project, i, en.DEMAND) for i in nodes],
                "flow": [en.getlinkvalue(project, i, en.FLOW) for i in links],
                "status": [int(en.getlinkvalue(project, i, en.STATUS)) for i in links],
            })
            if en.nextH(project) <= 0:
                break
        document = {
            "network": os.path.basename(inp),
            "node_ids": [en.getnodeid(project, i) for i in nodes],
            "link_ids": [en.getlinkid(project, i) for i in links],
            "steps": steps,
        }
        en.closeH(project)
        en.close(project)
    en.deleteproject(project)
    with open(out, "w") as f:
        json.dump(document, f)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    run(sys.argv[1], sys.argv[2])
