"""One process of a 2-process (gloo) training job, started by tests/test_distributed.py the way
Lightning's ``ddp`` starts its extra processes (``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR/PORT`` in the
environment), so that one pair of processes trains several configurations without paying the imports of
a new pair for each.

``python tests/ddp_worker.py OUT_DIR CASES_JSON``: CASES_JSON maps a case name to its overrides; each case
trains into OUT_DIR/<name> (rank 0 writes it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from cfgtools import compose_cfg
from ganlab.train import train

if __name__ == "__main__":
    torch.set_num_threads(1)
    out, cases = Path(sys.argv[1]), json.loads(sys.argv[2])
    for name, overrides in cases.items():
        summary = train(compose_cfg(overrides, out / name, tiny=False))
        if summary["status"] != "completed":
            sys.exit(f"{name}: {summary['status']}: {summary['error']}")
