"""`make demo`: train the non-saturating GAN on 25 Gaussians (experiment=demo) and say where to look.

Extra arguments are passed to ganlab.train as overrides, e.g. `python scripts/demo.py seed=1`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path


def main(argv: list[str]) -> int:
    run_dir = Path("outputs/demo") / datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    cmd = [sys.executable, "-m", "ganlab.train", "experiment=demo", f"hydra.run.dir={run_dir}", *argv]
    print("running:", " ".join(cmd), flush=True)
    code = subprocess.call(cmd)
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        print(f"the demo run failed before writing {summary_path} (exit code {code})", file=sys.stderr)
        return code or 1
    summary = json.loads(summary_path.read_text())
    m = summary["metrics"]
    print(f"\nstatus: {summary['status']} after {summary['g_steps']} generator steps in {summary['wall_s']:.0f} s")
    if "metrics/modes" in m:
        print(f"modes covered: {m['metrics/modes']:.0f} of {m['metrics/n_modes']:.0f}; "
              f"high-quality samples: {100 * m['metrics/hq']:.1f}% (of 2500, within 3 std of a mode)")
    print(f"samples:  {run_dir / (summary['samples'] or 'samples')}")
    print(f"summary:  {summary_path}")
    print(f"metrics:  {run_dir / 'metrics.csv'}")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
