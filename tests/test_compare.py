"""``python -m ganlab.compare`` on synthetic sweep folders (no training), against hand-computed numbers."""

from __future__ import annotations

import base64
import csv
import json
import math
from functools import partial
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import yaml

from ganlab.callbacks.evaluation import Evaluation
from ganlab.compare import main
from ganlab.data.toy import Grid25
from ganlab.metrics.modes import ModeMetrics
from ganlab.report.collect import collect_runs, parse_overrides
from ganlab.report.plots import mean_band
from ganlab.report.stats import (
    available_metrics,
    describe,
    group,
    higher_is_better,
    is_collapsed,
    rank,
    swept_params,
)

T_975_2 = 4.3027  # Student t quantile, 0.975, 2 degrees of freedom (printed tables)
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
) -> Path:
    """A run folder as ganlab.train leaves it; ``status=None``: no summary.json (hard crash). ``meta``:
    summary.json's ``metrics_meta`` (default: the declarations of ``metrics`` in :data:`DECLARED`)."""
    run = sweep / name
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"seed": 0}))
    seed = int(parse_overrides(overrides).get("seed", 0))
    if status is not None:
        summary = {
            "status": status,
            "g_steps": 40 + seed,
            "d_steps": 40,
            "wall_s": 1.25 + seed,
            "seed": seed,
            "overrides": overrides,
            "metrics": metrics or {},
            "metrics_meta": {k: DECLARED[k] for k in metrics or {} if k in DECLARED}
            if meta is None
            else meta,
            "error": None,
            "samples": "samples/final.png" if picture else None,
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


def modes_sweep(sweep: Path) -> Path:
    """loss=ns: 20, 22, 24 modes of 25; loss=hinge: 10, 14, 9 (two collapsed); max_steps is not swept."""
    values = {"ns": [20, 22, 24], "hinge": [10, 14, 9]}
    job = 0
    for loss, modes in values.items():
        for seed, m in enumerate(modes):
            make_run(
                sweep,
                str(job),
                ["trainer.max_steps=40", f"loss={loss}", f"seed={seed}"],
                metrics={
                    "metrics/modes": m,
                    "metrics/n_modes": 25,
                    "metrics/hq": 0.5 + 0.1 * seed,
                    "loss/d": 0.7,
                },
                curves={"metrics/modes": [(10, m - 2), (20, m)]},
            )
            job += 1
    return sweep


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def table_row(markdown: str, first_cells: str) -> str:
    """The line of a Markdown table that starts with ``| first_cells``."""
    lines = [line for line in markdown.splitlines() if line.startswith(f"| {first_cells}")]
    assert lines, f"no row starting with {first_cells!r}"
    return lines[0]


def test_describe_against_hand_computed_values():
    s = describe([20.0, 22.0, 24.0])
    assert (s.n, s.mean, s.std) == (3, 22.0, 2.0)
    assert s.ci == pytest.approx(T_975_2 * 2.0 / math.sqrt(3), rel=1e-4)
    s = describe([10.0, 14.0, 9.0])  # deviations -1, 3, -2: variance 14 / 2 = 7
    assert s.mean == 11.0 and s.std == pytest.approx(math.sqrt(7))
    assert s.ci == pytest.approx(T_975_2 * math.sqrt(7) / math.sqrt(3), rel=1e-4)
    s = describe([0.5, 1.5])  # t(0.975, 1) = 12.706
    assert s.ci == pytest.approx(12.706 * math.sqrt(0.5) / math.sqrt(2), rel=1e-4)
    assert describe([3.0]) == describe([3.0]).__class__(1, 3.0, None, None)
    assert describe([]).mean is None


def test_report_numbers_ranking_and_varying_params(tmp_path, capsys):
    sweep = modes_sweep(tmp_path / "sweep")
    assert main([str(sweep)]) == 0
    out = sweep / "report"
    md = (out / "report.md").read_text()
    # ns first (mean 22 > 11), hand-computed CI 4.968 -> [17.03, 26.97]; hinge: 2 of 3 collapsed
    assert table_row(md, "1 | ns |") == "| 1 | ns | 3 | 3 | 0 | 0 | 0 | 22 | 2 | ± 4.968 [17.03, 26.97] | 3 |"
    assert table_row(md, "2 | hinge |") == (
        "| 2 | hinge | 3 | 3 | 0 | 0 | 2 | 11 | 2.646 | ± 6.572 [4.428, 17.57] | 3 |"
    )
    assert md.index("| 1 | ns |") < md.index("| 2 | hinge |")
    assert "Best configuration: loss=ns (metrics/modes 22 ± 4.968" in md
    assert "metrics/modes, higher is better" in md and "collapsed when" in md
    assert "max_steps" not in md  # the same in every run: not a swept parameter
    assert "metrics/n_modes" not in md.split("## Runs")[0]  # a data constant, not a result
    rows = read_csv(out / "runs.csv")
    assert list(rows[0])[:6] == ["run", "loss", "seed", "status", "g_steps", "wall_s"]
    assert "Best configuration: loss=ns" in capsys.readouterr().out


def test_runs_csv_equals_summary_json(tmp_path):
    sweep = tmp_path / "sweep"
    make_run(
        sweep,
        "0",
        ["seed=0"],
        metrics={
            "metrics/fid": 31.123456789012345,
            "metrics/recall": 0.4,
            "metrics/precision": None,
            "loss/g": -1.5e-7,
        },
    )
    make_run(sweep, "1", ["seed=1"], metrics={"metrics/fid": 29.5, "metrics/recall": 0.3})
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    rows = read_csv(tmp_path / "out" / "runs.csv")
    for row in rows:
        summary = json.loads((sweep / row["run"] / "summary.json").read_text())
        assert int(row["g_steps"]) == summary["g_steps"] and float(row["wall_s"]) == summary["wall_s"]
        assert row["seed"] == str(summary["seed"]) and row["status"] == summary["status"]
        for key in ("metrics/fid", "metrics/recall", "metrics/precision", "loss/g"):
            value = summary["metrics"].get(key)
            assert (row[key] == "") if value is None else (float(row[key]) == value)
    assert not (sweep / "report").exists()  # --out used instead


def test_failed_diverged_missing_killed_and_collapsed_runs_are_counted(tmp_path):
    sweep = tmp_path / "sweep"

    def modes(m: int) -> dict[str, int]:
        return {"metrics/modes": m, "metrics/n_modes": 25}

    make_run(sweep, "0", ["loss=a", "seed=0"], metrics=modes(20))
    make_run(sweep, "1", ["loss=a", "seed=1"], status="failed")
    make_run(sweep, "2", ["loss=a", "seed=2"], status="diverged", metrics=modes(1))
    make_run(sweep, "3", ["loss=a", "seed=3"], status=None)  # hard crash: no summary.json
    make_run(sweep, "4", ["loss=b", "seed=0"], metrics=modes(12))  # 12 < 12.5: collapsed
    make_run(sweep, "5", ["loss=b", "seed=1"], status="running")  # no live process: killed
    (sweep / "not_a_run").mkdir()
    assert main([str(sweep)]) == 0
    md = (sweep / "report" / "report.md").read_text()
    # only run 0 counts for a's statistics (diverged modes=1 excluded): n=1, CI undefined
    assert table_row(md, "1 | a |") == "| 1 | a | 4 | 1 | 1 | 2 | 0 | 20 | — | undefined (n=1) | 1 |"
    assert table_row(md, "2 | b |") == "| 2 | b | 2 | 1 | 0 | 1 | 1 | 12 | — | undefined (n=1) | 1 |"
    status = {r["run"]: (r["status"], r["collapsed"]) for r in read_csv(sweep / "report" / "runs.csv")}
    assert status == {
        "0": ("completed", "no"),
        "1": ("failed", ""),
        "2": ("diverged", ""),
        "3": ("missing", ""),
        "4": ("completed", "yes"),
        "5": ("killed", ""),
    }
    assert "Runs: 6 run folders" in md


def test_collapse_definition(tmp_path):
    def ring(modes: int) -> dict[str, int]:
        return {"metrics/modes": modes, "metrics/n_modes": 8}

    def images(recall: float, coverage: float) -> dict[str, float]:
        return {"metrics/recall": recall, "metrics/coverage": coverage}

    runs = {
        "half": make_run(tmp_path, "half", [], metrics=ring(4)),  # 4 of 8
        "less": make_run(tmp_path, "less", [], metrics=ring(3)),
        "grid": make_run(tmp_path, "grid", [], metrics={"metrics/modes": 12, "metrics/n_modes": 25}),
        "twenty": make_run(tmp_path, "twenty", [], metrics={"metrics/modes": 12, "metrics/n_modes": 20}),
        "unknown": make_run(tmp_path, "unknown", [], metrics={"metrics/modes": 1}),  # no n_modes recorded
        "recall": make_run(tmp_path, "recall", [], metrics=images(0.05, 0.5)),
        "coverage": make_run(tmp_path, "coverage", [], metrics=images(0.5, 0.09)),
        "fine": make_run(tmp_path, "fine", [], metrics=images(0.1, 0.1)),  # thresholds are strict
        "fid_only": make_run(tmp_path, "fid_only", [], metrics={"metrics/fid": 300.0}),
        "diverged": make_run(tmp_path, "diverged", [], status="diverged", metrics={"metrics/recall": 0.0}),
    }
    collapsed = {r.name: is_collapsed(r) for r in collect_runs(tmp_path) if r.name in runs}
    assert collapsed == {
        "half": False,
        "less": True,
        "grid": True,
        "twenty": False,
        "unknown": None,
        "recall": True,
        "coverage": True,
        "fine": False,
        "fid_only": None,
        "diverged": None,
    }


def test_ranking_directions_and_missing_values(tmp_path):
    sweep = tmp_path / "sweep"
    fids = {"x": [30.0, 32.0], "y": [10.0, 12.0], "z": [20.0, 22.0]}
    for i, (lr, values) in enumerate(fids.items()):
        for seed, fid in enumerate(values):
            make_run(sweep, f"{i}{seed}", [f"optim.lr={lr}", f"seed={seed}"], metrics={"metrics/fid": fid})
    make_run(sweep, "30", ["optim.lr=w", "seed=0"], status="failed")
    runs = collect_runs(sweep)
    configs = group(runs, swept_params(runs))
    assert [c.label for c in rank(configs, "metrics/fid", higher=False)] == [
        "optim.lr=y",
        "optim.lr=z",
        "optim.lr=x",
        "optim.lr=w",
    ]
    assert [c.label for c in rank(configs, "metrics/fid", higher=True)] == [
        "optim.lr=x",
        "optim.lr=z",
        "optim.lr=y",
        "optim.lr=w",
    ]
    assert main([str(sweep), "--metric", "fid"]) == 0  # short name; lower is better as FID declares it
    md = (sweep / "report" / "report.md").read_text()
    assert "metrics/fid, lower is better (declared by the metric)" in md
    ranks = [table_row(md, f"{r} | {lr} |") for r, lr in (("1", "y"), ("2", "z"), ("3", "x"), ("—", "w"))]
    assert [md.index(row) for row in ranks] == sorted(md.index(row) for row in ranks)
    assert "Best configuration: optim.lr=y (metrics/fid 11 ± " in md


def score_sweep(sweep: Path, directions: list[str | None]) -> Path:
    """A user's metric ``metrics/score``: lr=a scores 1 and 2, lr=b 5 and 6; run i declares directions[i]
    (None: it declares nothing)."""
    values = [("a", 1.0), ("a", 2.0), ("b", 5.0), ("b", 6.0)]
    for i, ((lr, score), direction) in enumerate(zip(values, directions, strict=True)):
        meta = {} if direction is None else {"metrics/score": {"direction": direction, "range": [0, None]}}
        make_run(sweep, str(i), [f"lr={lr}", f"seed={i % 2}"], metrics={"metrics/score": score}, meta=meta)
    return sweep


def best_line(sweep: Path, metric: str, *flags: str) -> str:
    assert main([str(sweep), "--metric", metric, *flags]) == 0
    md = (sweep / "report" / "report.md").read_text()
    return md[md.index("Best configuration:") :].splitlines()[0]


@pytest.mark.parametrize(
    "direction,best", [("max", "lr=b (metrics/score 5.5"), ("min", "lr=a (metrics/score 1.5")]
)
def test_the_direction_a_metric_declares_decides_the_ranking(tmp_path, direction, best):
    sweep = score_sweep(tmp_path / "sweep", [direction] * 4)
    assert best_line(sweep, "score").startswith(f"Best configuration: {best}")
    md = (sweep / "report" / "report.md").read_text()
    assert f"{'higher' if direction == 'max' else 'lower'} is better (declared by the metric)" in md
    other = "--lower-is-better" if direction == "max" else "--higher-is-better"
    assert best not in best_line(sweep, "score", other)  # the flag overrides the declaration


@pytest.mark.parametrize("directions", [[None] * 4, ["max", "max", "min", "min"]], ids=["none", "conflict"])
def test_no_or_conflicting_declarations_ask_for_the_flag(tmp_path, capsys, directions):
    sweep = score_sweep(tmp_path / "sweep", directions)
    assert main([str(sweep), "--metric", "score"]) == 2
    err = capsys.readouterr().err
    assert "'metrics/score' is unknown" in err and "--higher-is-better" in err
    assert not (sweep / "report").exists()
    assert best_line(sweep, "score", "--higher-is-better").startswith("Best configuration: lr=b")


def test_a_sweep_is_ranked_by_what_ganlab_metrics_declare(tmp_path):
    """The declarations the evaluation writes (ModeMetrics on 25 modes): reverse KL lower is better, hq
    higher, and n_modes (a one-point range) is a constant of the data, not a result to rank by."""
    evaluation = Evaluation({"modes": partial(ModeMetrics.from_datamodule)})
    evaluation.metrics = evaluation.build_metrics(Grid25(n_train=10))
    meta = evaluation.declarations()
    assert meta["metrics/reverse_kl"] == {"direction": "min", "range": [0, pytest.approx(math.log(25))]}
    sweep = tmp_path / "sweep"
    for i, (loss, kl, hq) in enumerate([("x", 0.5, 0.2), ("y", 0.1, 0.1), ("z", 0.9, 0.9)]):
        metrics = {"metrics/reverse_kl": kl, "metrics/hq": hq, "metrics/modes": 20, "metrics/n_modes": 25}
        make_run(sweep, str(i), [f"loss={loss}"], metrics=metrics, meta=meta)
    runs = collect_runs(sweep)
    assert "metrics/n_modes" not in available_metrics(runs)
    assert higher_is_better(runs, "metrics/reverse_kl") is False and higher_is_better(runs, "metrics/hq")
    assert best_line(sweep, "reverse_kl").startswith("Best configuration: loss=y")
    assert best_line(sweep, "hq").startswith("Best configuration: loss=z")


def test_swept_params_only_varying_and_defaults(tmp_path):
    make_run(tmp_path, "0", ["data=ring8", "loss=hinge", "seed=0"])
    make_run(tmp_path, "1", ["data=ring8", "loss=hinge", "seed=1", "+penalty=gp"])
    make_run(tmp_path, "2", ["data=ring8", "loss=vanilla", "seed=0", "hydra.run.dir=/x"])
    runs = collect_runs(tmp_path)
    params = swept_params(runs)
    assert params == ["loss", "seed", "penalty"]
    assert [c.params for c in group(runs, params)] == [
        {"loss": "hinge", "penalty": "(default)"},
        {"loss": "hinge", "penalty": "gp"},
        {"loss": "vanilla", "penalty": "(default)"},
    ]


def test_parse_overrides():
    assert parse_overrides(["a=b=c", "+x=1", "++y=2", "~z", "hydra.run.dir=/x", "noequals"]) == {
        "a": "b=c",
        "x": "1",
        "y": "2",
        "z": "(deleted)",
    }


def test_mean_band():
    steps, mean, low, high = mean_band([[(0, 1.0), (10, 3.0)], [(0, 3.0), (10, 5.0), (20, 7.0)]])
    assert steps.tolist() == [0, 10, 20] and mean.tolist() == [2.0, 4.0, 7.0]
    assert low.tolist() == [1.0, 3.0, 7.0] and high.tolist() == [3.0, 5.0, 7.0]


def test_html_is_self_contained(tmp_path):
    sweep = modes_sweep(tmp_path / "sweep")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    assert len(images) == 3  # curves, final values, samples
    for image in images:
        assert base64.b64decode(image.split('"')[0]).startswith(b"\x89PNG")
    assert {p.name for p in (tmp_path / "out").iterdir()} == {
        "runs.csv",
        "report.md",
        "report.html",
        "curves.png",
        "finals.png",
        "samples.png",
    }


@pytest.mark.parametrize("case", ["no_folder", "no_run", "unknown_metric", "unknown_direction"])
def test_bad_input_exit_2_and_nothing_written(tmp_path, capsys, case):
    sweep = tmp_path / "sweep"
    if case != "no_folder":
        sweep.mkdir()
        (sweep / "notes.txt").write_text("not a run")
    if case in ("unknown_metric", "unknown_direction"):
        make_run(sweep, "0", ["seed=0"], metrics={"metrics/modes": 3, "loss/d": 0.5})
    args = {
        "no_folder": [],
        "no_run": [],
        "unknown_metric": ["--metric", "metrics/bogus"],
        "unknown_direction": ["--metric", "loss/d"],
    }[case]
    assert main([str(sweep), *args, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    expected = {
        "no_folder": str(sweep),
        "no_run": "holds no run folder",
        "unknown_metric": "'metrics/bogus'",
        "unknown_direction": "'loss/d'",
    }[case]
    assert expected in err and err.count("\n") == 1
    if case == "unknown_metric":
        assert "metrics/modes" in err  # the available ones are listed
    assert not (tmp_path / "out").exists() and not (sweep / "report").exists()
