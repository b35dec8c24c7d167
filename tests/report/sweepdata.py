"""Run folders as ganlab.train leaves them, written directly (no training), for the report's tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import yaml

from ganlab.report.collect import parse_overrides

# metrics_meta as ganlab's metrics declare it (checked against the metric classes in tests/metrics)
DECLARED = {
    **{
        f"metrics/{k}": {"direction": "max", "range": [0, 1]}
        for k in ("hq", "precision", "recall", "coverage")
    },
    "metrics/modes": {"direction": "max", "range": [0, 25]},
    "metrics/n_modes": {"direction": None, "range": [25, 25]},
    "metrics/fid": {"direction": "min", "range": [0, None]},
}


def make_run(
    sweep: Path,
    name: str,
    overrides: list[str],
    status: str | None = "completed",
    metrics: dict | None = None,
    curves: dict[str, list[tuple[int, float]]] | None = None,
    picture: bool = True,
    meta: dict | None = None,
    protocol: dict | None = None,
    **fields,
) -> Path:
    """A run folder; ``status=None``: no summary.json (hard crash). ``meta``: summary.json's
    ``metrics_meta`` (default: the declarations of ``metrics`` in :data:`DECLARED`); ``protocol``:
    ``metrics_protocol``; ``fields``: other summary.json fields (``wall_s``, ``diverged_at``, ...)."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"runtime": {"choices": {"data": "grid25", "loss": "non_saturating"}}}}
    (run / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    seed = int(parse_overrides(overrides).get("seed", 0))
    if status is not None:
        summary = {
            "status": status,
            "g_steps": 40 + seed,
            "d_steps": 40,
            "wall_s": 1.25 + seed,
            "seed": seed,
            "overrides": overrides,
            "choices": {"data": "grid25"},
            "metrics": metrics or {},
            "metrics_meta": {k: DECLARED[k] for k in metrics or {} if k in DECLARED}
            if meta is None
            else meta,
            "metrics_protocol": protocol or {},
            "error": None,
            "diverged_at": None,
            "samples": "samples/final.png" if picture else None,
            **fields,
        }
        (run / "summary.json").write_text(json.dumps(summary))
    curves = curves or {}
    columns = sorted(curves)
    with open(run / "metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", *columns, "step"])
        writer.writerow([0, *[""] * len(columns), 9])  # a training row without metrics
        for i, key in enumerate(columns):
            for step, value in curves[key]:
                writer.writerow([0, *["" if j != i else value for j in range(len(columns))], step])
    if picture:
        (run / "samples").mkdir()
        plt.imsave(run / "samples" / "final.png", np.full((4, 4, 3), 0.1 * (seed + 1)))
    return run


def modes_sweep(sweep: Path, values: dict[str, list[float]] | None = None, data: str = "grid25") -> Path:
    """``loss=<name>`` x seeds with the given metrics/modes (default ns: 20, 22, 24; hinge: 10, 14, 9)."""
    values = values or {"ns": [20, 22, 24], "hinge": [10, 14, 9]}
    for loss, modes in values.items():
        for seed, m in enumerate(modes):
            make_run(
                sweep,
                f"{data}_{loss}_{seed}",
                [f"data={data}", "trainer.max_steps=40", f"loss={loss}", f"seed={seed}"],
                metrics={"metrics/modes": m, "metrics/n_modes": 25, "metrics/hq": 0.5 + 0.1 * seed},
                curves={"metrics/modes": [(10, m - 2), (20, m)]},
                protocol={"modes": {"n_modes": 25, "n_fake": 2500, "fake_seed": seed}},
            )
    return sweep


def report_json(out: Path) -> dict:
    return json.loads((out / "report.json").read_text())
