"""Scale and damage: a thousand run folders are read and reported; damaged folders are listed, not fatal."""

from __future__ import annotations

from pathlib import Path

from sweepdata import make_run, modes_sweep, report_json

from ganlab.compare import main
from ganlab.report.collect import collect_runs


def thousand_runs(sweep: Path) -> Path:
    """2 datasets x 5 configurations x 100 seeds, each run folder as small as ganlab leaves it."""
    for data in ("ring8", "grid25"):
        for config in range(5):
            for seed in range(100):
                make_run(
                    sweep,
                    f"{data}_{config}_{seed}",
                    [f"data={data}", f"optim.lr={config}", f"seed={seed}"],
                    metrics={"metrics/modes": (config + seed) % 8},
                    curves={"metrics/modes": [(10, 1.0), (20, float((config + seed) % 8))]},
                    picture=False,
                )
    return sweep


def test_a_thousand_run_folders_are_read_and_reported(tmp_path):
    sweep = thousand_runs(tmp_path / "sweep")
    assert len(collect_runs(sweep)) == 1000
    assert main([str(sweep)]) == 0
    data = report_json(sweep / "report")
    assert [len(e["configurations"]) for e in data["environments"]] == [5, 5]
    assert all(c["n"] == 100 for e in data["environments"] for c in e["configurations"])


def test_damaged_run_folders_are_listed_not_fatal(tmp_path, capsys):
    sweep = modes_sweep(tmp_path / "sweep")
    truncated = sweep / "grid25_ns_0" / "summary.json"
    truncated.write_text(truncated.read_text()[:40])  # a write cut short
    (sweep / "grid25_hinge_1" / "metrics.csv").write_text("")
    assert main([str(sweep)]) == 0
    damaged = {d["run"]: d["reason"] for d in report_json(sweep / "report")["damaged"]}
    assert set(damaged) == {"grid25_ns_0", "grid25_hinge_1"}
    assert damaged["grid25_ns_0"].startswith("summary.json unreadable")
    assert damaged["grid25_hinge_1"] == "metrics.csv is empty"
    (env,) = report_json(sweep / "report")["environments"]
    ns = next(c for c in env["configurations"] if c["name"] == "loss=ns")
    assert ns["n"] == 2 and ns["failures"]["n"] == 3  # the damaged run counts as a run that did not complete
    page = (sweep / "report" / "report.html").read_text()
    assert "Damaged run folders" in page and "metrics.csv is empty" in page
