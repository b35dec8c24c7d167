"""The demos. `make demo` (scripts/demo.py, experiment=demo_study): the study is large enough for the
report's test to separate two fixes, the script runs the sweep and then the report, and it prints the
report's answer (winner, interval, tied and separated fixes, path) from report.json as the contract
between report and demo defines it. `make demo-single` (experiment=demo): real training covers most of the
25 modes with mostly high-quality samples (VEEGAN / PacGAN protocol, 2500 samples, 3 std)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from scipy.stats import mannwhitneyu

from ganlab.paths import CONF_DIR
from ganlab.train import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "demo.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("demo", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def configuration(name: str, values: list[float], ci: list[float], p: float | None) -> dict:
    mean = sum(values) / len(values)
    return {
        "name": name,
        "n": len(values),
        "seeds": list(range(len(values))),
        "values": values,
        "mean": mean,
        "median": sorted(values)[len(values) // 2],
        "iqm": mean,
        "std": 0.0,
        "ci": ci,
        "ci_method": "bootstrap-percentile",
        "best": p is None,
        "tied_with_best": p is not None and p >= 0.05,
        "p_vs_best": p,
        "prob_improvement_vs_baseline": None,
        "wall_s_mean": 30.0,
        "g_steps_mean": 2000,
        "failures": {"diverged": 0, "collapsed": 0, "n": len(values), "diverged_ci": [0, 0.43]},
    }


def write_report(folder: Path) -> Path:
    """A report.json as the comparison report writes it (keys of the contract), with the p-values of a
    Holm-corrected exact Mann-Whitney U computed here by scipy."""
    best = [25.0, 24.0, 25.0, 23.0, 25.0]
    tied = [24.0, 22.0, 25.0, 21.0, 23.0]
    worse = [15.0, 12.0, 18.0, 14.0, 16.0]
    p_tied, p_worse = (float(mannwhitneyu(best, other).pvalue) for other in (tied, worse))
    p_worse = min(1.0, 2 * p_worse)  # Holm with 2 tests: the smaller p times 2, the larger times 1,
    p_tied = max(p_tied, p_worse)  # kept monotone
    env = {
        "key": {"data": "grid25"},
        "metric": "metrics/modes",
        "direction": "max",
        "range": [0, 25],
        "protocol": {"n_samples": 2500},
        "configurations": [
            configuration("fix=ns_r1", best, [23.6, 25.0], None),
            configuration("fix=non_saturating", tied, [21.8, 24.4], p_tied),
            configuration("fix=vanilla", worse, [13.0, 17.2], p_worse),
        ],
        "winner": "fix=ns_r1",
        "tied_with_winner": ["fix=non_saturating"],
        "warnings": [],
    }
    report = {"sweep": str(folder.parent), "by": ["data"], "baseline": "fix=non_saturating"}
    path = folder / "report.json"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**report, "environments": [env], "damaged": []}))
    return path


def test_the_answer_names_the_winner_its_interval_the_tied_and_the_separated_fixes(demo, tmp_path):
    path = write_report(tmp_path / "sweep" / "report")
    env = json.loads(path.read_text())["environments"][0]
    p_tied, p_worse = (c["p_vs_best"] for c in env["configurations"][1:])
    assert p_worse < 0.05 <= p_tied  # the fixture itself: one fix separated by the test, one tied
    text = demo.answer(path)
    lines = text.splitlines()
    assert lines[0] == "data=grid25: metrics/modes (higher is better, range 0 to 25)"
    assert lines[1].split() == [
        "winner:", "fix=ns_r1", "24.4", "[23.6,", "25]", "(mean", "[95%", "interval,",
        "bootstrap-percentile],", "5", "seeds)",
    ]  # fmt: skip
    tied_at, separated_at = (
        lines.index("  tied with it (the test cannot separate them):"),
        next(i for i, line in enumerate(lines) if line.startswith("  separated from it")),
    )
    assert lines[tied_at + 1].split() == [
        "fix=non_saturating",
        "23",
        "[21.8,",
        "24.4]",
        "p",
        "=",
        f"{p_tied:.3g}",
    ]
    assert separated_at == tied_at + 2
    assert lines[separated_at + 1].split() == [
        "fix=vanilla",
        "15",
        "[13,",
        "17.2]",
        "p",
        "=",
        f"{p_worse:.3g}",
    ]
    assert lines[-1].startswith(f"report: {path.parent / 'report.html'}")


def test_a_tie_across_the_board_says_none_is_separated(demo, tmp_path):
    path = write_report(tmp_path / "report")
    report = json.loads(path.read_text())
    env = report["environments"][0]
    env["configurations"] = env["configurations"][:2]
    path.write_text(json.dumps(report))
    lines = demo.answer(path).splitlines()
    assert (
        lines[lines.index("  separated from it (Holm-corrected Mann-Whitney U, p < 0.05):") + 1] == "    none"
    )


def test_the_study_runs_the_sweep_then_the_report_and_prints_its_answer(demo, tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(cmd: list[str]) -> int:
        calls.append(cmd)
        if "ganlab.train" in cmd:
            (tmp_path / "sweep").mkdir()
        else:
            write_report(tmp_path / "sweep" / "report")
        return 0

    monkeypatch.setattr(demo, "run", fake_run)
    assert demo.study(tmp_path / "sweep", ["seed=0,1,2,3,4,5"]) == 0
    assert calls[0][1:] == ["-m", "ganlab.train", "experiment=demo_study", "seed=0,1,2,3,4,5",
                            f"hydra.sweep.dir={tmp_path / 'sweep'}"]  # fmt: skip
    report = str(tmp_path / "sweep" / "report")
    assert calls[1][1:] == ["-m", "ganlab.compare", str(tmp_path / "sweep"), "--out", report]
    assert "winner:    fix=ns_r1" in capsys.readouterr().out


def test_a_failed_training_job_still_gets_the_answer_and_exit_code_1(demo, tmp_path, monkeypatch, capsys):
    def fake_run(cmd: list[str]) -> int:  # the sweep ran all its jobs, one failed (ganlab.train exits 1)
        if "ganlab.train" in cmd:
            (tmp_path / "sweep").mkdir()
            return 1
        write_report(tmp_path / "sweep" / "report")
        return 0

    monkeypatch.setattr(demo, "run", fake_run)
    assert demo.study(tmp_path / "sweep", []) == 1
    assert "winner:    fix=ns_r1" in capsys.readouterr().out


def test_a_bad_override_exits_2_and_writes_nothing(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "fix=no_such_fix"], cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "no_such_fix" in done.stderr and "demo: the study did not start" in done.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_study_has_enough_seeds_for_the_test_to_separate_two_fixes():
    """An exact two-sided Mann-Whitney U between n and n seeds reaches at best p = 2 / C(2n, n) (complete
    separation): 0.1 for 3 seeds, 0.029 for 4, 0.0079 for 5; Holm multiplies the smallest p by the number
    of comparisons with the best (fixes - 1). The study must leave that below 0.05."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=demo_study"], return_hydra_config=True)
    params = cfg.hydra.sweeper.params
    fixes, seeds = str(params.fix).split(","), str(params.seed).split(",")
    assert cfg.data._target_.endswith("Grid25") and len(fixes) >= 3
    n = len(seeds)
    best_p = mannwhitneyu(range(n), range(n, 2 * n), method="exact").pvalue
    assert best_p * (len(fixes) - 1) < 0.05


def test_the_study_config_trains_and_records_the_ranking_metric(make_cfg):
    summary = train(make_cfg("experiment=demo_study", "fix=ns_r1", "trainer.max_steps=4"))
    assert summary["status"] == "completed", summary["error"]
    assert summary["metrics"]["metrics/n_modes"] == 25 and "metrics/modes" in summary["metrics"]


@pytest.mark.slow
def test_demo_config_covers_at_least_20_of_25_modes_with_70_percent_high_quality(make_cfg):
    cfg = make_cfg("experiment=demo", tiny=False)
    assert cfg.callbacks.evaluation.n_samples == 2500
    summary = train(cfg)
    metrics = summary["metrics"]
    assert summary["status"] == "completed" and summary["g_steps"] == cfg.trainer.max_steps
    assert metrics["metrics/n_modes"] == 25
    assert metrics["metrics/modes"] >= 20, metrics
    assert metrics["metrics/hq"] >= 0.70, metrics
