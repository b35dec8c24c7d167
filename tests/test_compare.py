"""``python -m ganlab.compare`` on synthetic sweep folders (no training): environments, the numbers of
report.json against independent computations, failures, budget, protocols, bad input."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from functools import partial
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ganlab.callbacks.evaluation import Evaluation
from ganlab.compare import main
from ganlab.data.toy import Grid25
from ganlab.metrics.modes import ModeMetrics
from ganlab.report.collect import collect_runs, parse_overrides
from ganlab.report.stats import (
    available_metrics,
    default_metric,
    group,
    higher_is_better,
    is_collapsed,
    swept_params,
)
from report.sweepdata import make_run, modes_sweep, report_json

CONTRACT_CONFIG_KEYS = {
    "name",
    "n",
    "seeds",
    "values",
    "mean",
    "median",
    "iqm",
    "std",
    "ci",
    "ci_method",
    "best",
    "tied_with_best",
    "p_vs_best",
    "prob_improvement_vs_baseline",
    "wall_s_mean",
    "g_steps_mean",
    "failures",
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def two_datasets(sweep: Path) -> Path:
    """grid25 (25 modes): ns 20, 22, 24 and hinge 10, 14, 9; ring8 (8 modes): hinge 8, 8, 7 and ns 3, 4, 2."""
    modes_sweep(sweep)
    for loss, modes in {"hinge": [8, 8, 7], "ns": [3, 4, 2]}.items():
        for seed, m in enumerate(modes):
            make_run(
                sweep,
                f"ring8_{loss}_{seed}",
                ["data=ring8", "trainer.max_steps=40", f"loss={loss}", f"seed={seed}"],
                metrics={"metrics/modes": m, "metrics/n_modes": 8, "metrics/hq": 0.9 - 0.1 * seed},
                meta={
                    "metrics/modes": {"direction": "max", "range": [0, 8]},
                    "metrics/hq": {"direction": "max", "range": [0, 1]},
                },
                protocol={"modes": {"n_modes": 8, "n_fake": 2500, "fake_seed": seed}},
            )
    return sweep


def test_each_dataset_is_ranked_apart_and_report_json_keeps_the_contract(tmp_path, capsys):
    sweep = two_datasets(tmp_path / "sweep")
    assert main([str(sweep), "--baseline", "loss=hinge"]) == 0
    data = report_json(sweep / "report")
    assert (
        data["sweep"] == str(sweep.resolve()) and data["by"] == ["data"] and data["baseline"] == "loss=hinge"
    )
    envs = {e["key"]["data"]: e for e in data["environments"]}
    assert set(envs) == {"grid25", "ring8"}
    assert envs["grid25"]["winner"] == "loss=ns" and envs["ring8"]["winner"] == "loss=hinge"
    assert envs["grid25"]["range"] == [0, 25] and envs["ring8"]["range"] == [0, 8]
    assert envs["ring8"]["protocol"] == {
        "modes": {"n_modes": 8, "n_fake": 2500}
    }  # fake_seed follows the seed
    for env in envs.values():
        assert env["metric"] == "metrics/modes" and env["direction"] == "max"
        assert {"tied_with_winner", "warnings"} <= set(env)
        for config in env["configurations"]:
            assert CONTRACT_CONFIG_KEYS <= set(config)
            assert set(config["failures"]) >= {"diverged", "collapsed", "n", "diverged_ci", "collapsed_ci"}
    assert data["damaged"] == []
    out = capsys.readouterr().out
    assert "data=grid25: best loss=ns" in out and "data=ring8: best loss=hinge" in out


def test_statistics_tests_and_improvement_match_independent_computations(tmp_path):
    values = {"a": [20, 22, 24, 23, 21], "b": [10, 14, 9, 12, 11], "c": [21, 19, 22, 20, 18]}
    sweep = modes_sweep(tmp_path / "sweep", values)
    assert main([str(sweep), "--baseline", "loss=b"]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    rows = {c["name"]: c for c in env["configurations"]}
    assert [c["name"] for c in env["configurations"]] == ["loss=a", "loss=c", "loss=b"]
    a, b, c = (rows[f"loss={k}"] for k in "abc")
    assert a["seeds"] == [0, 1, 2, 3, 4] and a["values"] == values["a"]
    assert (a["mean"], a["median"]) == (pytest.approx(22.0), pytest.approx(22.0))
    assert a["iqm"] == pytest.approx(22.0)  # 5 values: one cut at each end -> mean of 21, 22, 23
    assert c["iqm"] == pytest.approx(20.0) and c["median"] == pytest.approx(20.0)
    assert a["std"] == pytest.approx(np.std(values["a"], ddof=1))
    rng = np.random.default_rng(0)
    resampled = np.array(values["a"], dtype=float)[rng.integers(0, 5, (10_000, 5))].mean(axis=1)
    assert a["ci"] == pytest.approx(list(np.percentile(resampled, [2.5, 97.5])))
    assert a["ci_method"] == "bootstrap-percentile"
    p_c = stats.mannwhitneyu(values["a"], values["c"]).pvalue
    p_b = stats.mannwhitneyu(values["a"], values["b"]).pvalue  # 2 / C(10, 5): complete separation
    assert p_b == pytest.approx(2 / 252) and p_b < p_c
    assert b["p_vs_best"] == pytest.approx(2 * p_b)  # Holm: the smaller of two p-values times 2
    assert c["p_vs_best"] == pytest.approx(max(2 * p_b, p_c))  # the larger times 1, kept monotone
    assert c["p_vs_best_uncorrected"] == pytest.approx(p_c)
    assert a["best"] and a["p_vs_best"] is None and not a["tied_with_best"]
    assert not b["tied_with_best"] and c["tied_with_best"] == (c["p_vs_best"] >= 0.05)
    assert env["tied_with_winner"] == (["loss=c"] if c["tied_with_best"] else [])
    assert a["prob_improvement_vs_baseline"] == 1.0 and b["prob_improvement_vs_baseline"] == 0.5
    assert c["prob_improvement_vs_baseline"] == 1.0  # paired by seed: 21>10, 19>14, 22>9, 20>12, 18>11
    assert a["wall_s_mean"] == pytest.approx(1.25 + 2.0) and a["g_steps_mean"] == pytest.approx(42.0)


def test_other_metrics_are_sorted_by_themselves(tmp_path):
    sweep = tmp_path / "sweep"
    for i, (loss, modes, hq) in enumerate([("x", 20, 0.1), ("y", 10, 0.9), ("z", 15, 0.5)]):
        make_run(sweep, str(i), [f"loss={loss}"], metrics={"metrics/modes": modes, "metrics/hq": hq})
    assert main([str(sweep)]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    assert [c["name"] for c in env["configurations"]] == ["loss=x", "loss=z", "loss=y"]
    (hq,) = [t for t in env["other_metrics"] if t["metric"] == "metrics/hq"]
    assert [c["name"] for c in hq["configurations"]] == ["loss=y", "loss=z", "loss=x"]
    md = (sweep / "report" / "report.md").read_text()
    table = md[md.index("### metrics/hq") if "### metrics/hq" in md else md.index("metrics/hq (sorted") :]
    assert table.index("loss=y") < table.index("loss=z") < table.index("loss=x")


def test_few_seeds_are_warned_about_and_three_against_three_is_explained(tmp_path):
    sweep = modes_sweep(tmp_path / "sweep", {"a": [20, 22, 24], "b": [10, 14, 9], "c": [5, 6]})
    assert main([str(sweep)]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    assert any("fewer than 3 seeds" in w and "loss=c (n=2)" in w for w in env["warnings"])
    assert any("cannot reach p < 0.05" in w and "min p = 0.1" in w for w in env["warnings"])
    b = next(c for c in env["configurations"] if c["name"] == "loss=b")
    assert b["tied_with_best"] and b["p_vs_best"] >= 0.1  # completely separated, yet 3 vs 3 cannot tell
    page = (sweep / "report" / "report.html").read_text()
    assert page.count('class="warn"') >= 2 and "min p = 0.1" in page
    assert "seeds per configuration would separate loss=a from loss=b" in page


def test_holm_over_many_configurations_is_warned_about(tmp_path):
    # 4 seeds each: min exact p = 2/70 = 0.0286 < 0.05, but Holm over 3 comparisons gives at least 0.0857
    sweep = modes_sweep(
        tmp_path / "sweep", {k: [v, v + 1, v + 2, v + 3] for k, v in zip("abcd", (20, 1, 2, 3), strict=True)}
    )
    assert main([str(sweep)]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    assert any("no corrected p can fall below 0.0857" in w for w in env["warnings"])
    assert all(c["tied_with_best"] for c in env["configurations"][1:])  # completely separated, yet tied
    assert env["configurations"][1]["p_vs_best"] == pytest.approx(3 * 2 / 70)


def test_t_interval_option_is_clipped_to_the_range(tmp_path):
    sweep = modes_sweep(tmp_path / "sweep", {"a": [24, 25], "b": [1, 2]})
    assert main([str(sweep), "--ci", "t"]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    a = env["configurations"][0]
    half = stats.t.ppf(0.975, 1) * np.std([24, 25], ddof=1) / math.sqrt(2)  # 6.35
    assert a["ci"] == pytest.approx([24.5 - half, 25]) and a["ci_method"] == "t"


def test_runs_under_different_protocols_are_never_ranked_together(tmp_path):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        for loss, n_fake, fid in (("a", 10_000, 30.0 + seed), ("b", 2_000, 20.0 + seed)):
            protocol = {"fid": {"feature_net_sha256": "abc", "n_fake": n_fake, "fake_seed": seed}}
            make_run(
                sweep,
                f"{loss}{seed}",
                [f"loss={loss}", f"seed={seed}"],
                metrics={"metrics/fid": fid},
                protocol=protocol,
            )
    assert main([str(sweep)]) == 0
    data = report_json(sweep / "report")
    assert len(data["environments"]) == 2
    for env in data["environments"]:
        assert len(env["configurations"]) == 1 and env["winner"] == env["configurations"][0]["name"]
        assert any("different protocols" in w for w in env["warnings"])
    assert sorted(e["protocol"]["fid"]["n_fake"] for e in data["environments"]) == [2000, 10_000]
    assert '"feature_net_sha256": "abc"' in (sweep / "report" / "report.md").read_text()


def test_failures_with_wilson_intervals_and_when_runs_diverged(tmp_path):
    sweep = tmp_path / "sweep"
    modes = {"metrics/modes": 20, "metrics/n_modes": 25}
    make_run(sweep, "0", ["loss=a", "seed=0"], metrics=modes)
    make_run(sweep, "1", ["loss=a", "seed=1"], status="diverged", diverged_at=120)
    make_run(sweep, "2", ["loss=a", "seed=2"], status="diverged", diverged_at=75)
    make_run(sweep, "3", ["loss=a", "seed=3"], metrics={**modes, "metrics/modes": 3})  # collapsed
    make_run(sweep, "4", ["loss=b", "seed=0"], status=None)  # hard crash: no summary.json
    make_run(sweep, "5", ["loss=b", "seed=1"], metrics=modes)
    assert main([str(sweep)]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    assert env["key"] == {"data": "grid25"}  # the crashed run's data from .hydra/hydra.yaml: same environment
    a = next(c for c in env["configurations"] if c["name"] == "loss=a")["failures"]
    assert (a["diverged"], a["collapsed"], a["n"], a["diverged_at"]) == (2, 1, 4, [120, 75])
    z = stats.norm.ppf(0.975)
    centre, half = (2 + z**2 / 2) / (4 + z**2), z / (4 + z**2) * math.sqrt(2 * 2 / 4 + z**2 / 4)
    assert a["diverged_ci"] == pytest.approx([centre - half, centre + half])
    md = (sweep / "report" / "report.md").read_text()
    assert "| loss=a | 4 | 2/4 [" in md and "| 120, 75 |" in md


def test_budget_curves_for_several_configurations_per_fix(tmp_path):
    sweep = tmp_path / "sweep"
    means = {
        ("ns", "1e-3"): 20,
        ("ns", "1e-4"): 10,
        ("ns", "3e-4"): 15,
        ("hinge", "1e-3"): 5,
        ("hinge", "1e-4"): 7,
    }
    for (fix, lr), m in means.items():
        for seed in range(2):
            make_run(
                sweep,
                f"{fix}{lr}{seed}",
                [f"fix={fix}", f"lr={lr}", f"seed={seed}"],
                metrics={"metrics/modes": m + seed},
            )
    assert main([str(sweep)]) == 0
    data = report_json(sweep / "report")
    assert data["family"] == "fix"
    budget = data["environments"][0]["budget"]
    # ns: mean scores 20.5, 10.5, 15.5 -> E[best of 1] = 15.5, of 2 = (15.5 + 20.5 + 20.5) / 3, of 3 = 20.5
    assert budget["fix=ns"]["expected"] == pytest.approx([15.5, 56.5 / 3, 20.5])
    assert budget["fix=hinge"]["expected"] == pytest.approx([6.5, 7.5])
    assert (sweep / "report" / "budget.png").is_file()


def test_html_is_self_contained_with_every_plot(tmp_path):
    sweep = two_datasets(tmp_path / "sweep")
    assert main([str(sweep), "--out", str(tmp_path / "out")]) == 0
    page = (tmp_path / "out" / "report.html").read_text()
    images = page.split('src="data:image/png;base64,')[1:]
    # curves, diagnostics (not logged: none), finals, wall time, samples per environment (2)
    assert len(images) == 5
    for image in images:
        assert base64.b64decode(image.split('"')[0]).startswith(b"\x89PNG")
    assert not re.search(r"(src|href)=[\"']?(https?:)?//", page)
    for reference in ("Agarwal", "Lucic", "Kurach", "Wilson 1927", "Holm 1979", "Mann, Whitney 1947"):
        assert reference in page


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
        "repeats": make_run(
            tmp_path, "repeats", [], metrics={"metrics/kmer_js": 0.9, "metrics/distinct": 0.49}
        ),
        "varied": make_run(tmp_path, "varied", [], metrics={"metrics/kmer_js": 0.9, "metrics/distinct": 0.5}),
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
        "repeats": True,
        "varied": False,
        "diverged": None,
    }


def score_sweep(sweep: Path, directions: list[str | None]) -> Path:
    """A user's metric ``metrics/score``: lr=a scores 1 and 2, lr=b 5 and 6; run i declares directions[i]
    (None: it declares nothing)."""
    values = [("a", 1.0), ("a", 2.0), ("b", 5.0), ("b", 6.0)]
    for i, ((lr, score), direction) in enumerate(zip(values, directions, strict=True)):
        meta = {} if direction is None else {"metrics/score": {"direction": direction, "range": [0, None]}}
        make_run(sweep, str(i), [f"lr={lr}", f"seed={i % 2}"], metrics={"metrics/score": score}, meta=meta)
    return sweep


def best_line(sweep: Path, metric: str, *flags: str) -> str:
    """``Best configuration: <winner> (<metric> <mean>``, from report.json."""
    assert main([str(sweep), "--metric", metric, *flags]) == 0
    (env,) = report_json(sweep / "report")["environments"]
    best = env["configurations"][0]
    return f"Best configuration: {best['name']} ({env['metric']} {best['mean']:.4g}"


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


BAD = {
    "no_folder": ([], "does not exist"),
    "no_run": ([], "holds no run folder"),
    "unknown_metric": (["--metric", "metrics/bogus"], "'metrics/bogus'"),
    "unknown_direction": (["--metric", "loss/d"], "'loss/d'"),
    "unknown_by": (["--by", "data,bogus"], "'bogus' is not an override or config group"),
    "unknown_baseline": (["--baseline", "loss=nope"], "--baseline 'loss=nope' is no configuration"),
    "unknown_family": (["--family", "seed"], "--family 'seed' is not a swept parameter"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exit_2_and_nothing_written_or_destroyed(tmp_path, capsys, case):
    sweep = tmp_path / "sweep"
    if case != "no_folder":
        sweep.mkdir()
        (sweep / "notes.txt").write_text("not a run")
    if case not in ("no_folder", "no_run"):
        for seed in range(2):
            metrics = {"metrics/modes": 3 + seed, "loss/d": 0.5}
            make_run(sweep, f"{seed}", ["loss=ns", f"seed={seed}"], metrics=metrics)
    earlier = tmp_path / "out"
    earlier.mkdir()
    (earlier / "report.html").write_text("an earlier report")
    args, expected = BAD[case]
    assert main([str(sweep), *args, "--out", str(earlier)]) == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
    if case == "unknown_metric":
        assert "metrics/modes" in err  # the available ones are listed
    if case == "unknown_by":
        assert "valid axes:" in err and "loss" in err
    assert [p.name for p in earlier.iterdir()] == ["report.html"]
    assert (earlier / "report.html").read_text() == "an earlier report"
    assert not (sweep / "report").exists()


def test_default_ranking_metric_prefers_modes_then_fid_then_kmer_js():
    assert default_metric(["metrics/hq", "metrics/modes", "metrics/fid"]) == "metrics/modes"
    assert default_metric(["metrics/distinct", "metrics/kmer_js", "metrics/kmer_js_1"]) == "metrics/kmer_js"
    assert default_metric(["loss/d", "loss/g"]) == "loss/d"
