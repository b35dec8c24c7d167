"""Configurations (runs that differ only by seed), the swept parameters, the metrics a sweep has, and the
definition of a collapsed run.

Values of a metric over the runs of a configuration are those of the *completed* runs that have one (JSON
null, e.g. reverse KL without a high-quality sample, is no value).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ganlab.report.collect import DEFAULT, Run

# Collapse thresholds, the only place they are set. Only a *completed* run can be collapsed (a diverged
# run counts as diverged). Toy data (metrics/modes): fewer than COLLAPSE_MODES_FRACTION of the data's
# modes covered. Images: metrics/recall < COLLAPSE_RECALL or metrics/coverage < COLLAPSE_COVERAGE, for
# whichever of the two exists. Sequences: metrics/distinct < COLLAPSE_DISTINCT (more than half of the
# generated sequences repeat others).
COLLAPSE_MODES_FRACTION = 0.5
COLLAPSE_RECALL = 0.1
COLLAPSE_COVERAGE = 0.1
COLLAPSE_DISTINCT = 0.5
COLLAPSE_DEFINITION = (
    f"a completed run is collapsed when, on toy data, metrics/modes < {COLLAPSE_MODES_FRACTION:g} × n_modes "
    f"(the data's number of modes), or, on images, metrics/recall < {COLLAPSE_RECALL:g} or "
    f"metrics/coverage < {COLLAPSE_COVERAGE:g}, or, on sequences, metrics/distinct < {COLLAPSE_DISTINCT:g} "
    "(the fraction of distinct generated sequences); diverged runs count as diverged, not collapsed"
)
FAILED_DEFINITION = "failed = status failed, interrupted, killed (running without a live process) or missing"

SEED = "seed"


def higher_is_better(runs: list[Run], metric: str) -> bool | None:
    """Whether higher is better for ``metric``, as the runs' metrics declare it (summary.json's
    ``metrics_meta``); ``None`` when no run declares a direction, or runs declare different ones."""
    declared = (r.meta(metric) for r in runs)
    directions = {m.direction for m in declared if m is not None and m.direction is not None}
    return directions == {"max"} if len(directions) == 1 else None


def declared_range(runs: list[Run], metric: str) -> tuple[float | None, float | None]:
    """The range ``metric`` lies in, as the runs declare it: the widest of their declarations (``None``:
    unbounded, also when no run declares one)."""
    declared = [m for r in runs if (m := r.meta(metric)) is not None]
    if not declared:
        return None, None
    lows, highs = [m.low for m in declared], [m.high for m in declared]
    low = None if None in lows else min(lows)
    return low, None if None in highs else max(highs)


def is_collapsed(run: Run) -> bool | None:
    """Whether a completed run collapsed (see the constants above); ``None`` for a run that did not
    complete (not applicable) or when the metrics cannot tell."""
    if run.status != "completed":
        return None
    modes = run.metrics.get("metrics/modes")
    if modes is not None:
        return modes < COLLAPSE_MODES_FRACTION * run.n_modes if run.n_modes else None
    checks = [
        (run.metrics.get("metrics/recall"), COLLAPSE_RECALL),
        (run.metrics.get("metrics/coverage"), COLLAPSE_COVERAGE),
        (run.metrics.get("metrics/distinct"), COLLAPSE_DISTINCT),
    ]
    checks = [(value, threshold) for value, threshold in checks if value is not None]
    return any(value < threshold for value, threshold in checks) if checks else None


@dataclass
class Config:
    """The runs that share the values of the swept parameters other than the seed."""

    params: dict[str, str]
    runs: list[Run] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The swept parameters other than the seed, ``fix=ns_r1,lr=0.001``; ``(all runs)`` for none."""
        return ",".join(f"{k}={v}" for k, v in self.params.items()) or "(all runs)"

    def by_seed(self, metric: str) -> dict[int, float]:
        """Seed -> the metric's value, over the completed runs that have one (a run without a seed is keyed
        by its position)."""
        found = {
            r.seed if r.seed is not None else -1 - i: r.metrics.get(metric)
            for i, r in enumerate(self.runs)
            if r.status == "completed"
        }
        return {seed: value for seed, value in found.items() if value is not None}

    def values(self, metric: str) -> list[float]:
        """The metric's values over the completed runs that have one."""
        return list(self.by_seed(metric).values())


def swept_params(runs: list[Run]) -> list[str]:
    """The override keys whose value differs across runs (absent counts as a value), in the order they
    first appear."""
    keys = list(dict.fromkeys(k for r in runs for k in r.overrides))
    return [k for k in keys if len({r.overrides.get(k, DEFAULT) for r in runs}) > 1]


def group(runs: list[Run], params: list[str]) -> list[Config]:
    """One :class:`Config` per distinct value of ``params`` other than the seed, in order of first run."""
    configs: dict[tuple[str, ...], Config] = {}
    keys = [k for k in params if k != SEED]
    for run in runs:
        values = tuple(run.overrides.get(k, DEFAULT) for k in keys)
        configs.setdefault(values, Config(dict(zip(keys, values, strict=True)))).runs.append(run)
    return list(configs.values())


def available_metrics(runs: list[Run]) -> list[str]:
    """Every final metric of any run, the ``metrics/*`` ones first, each part sorted (the values a run
    declares constant, constants of the data such as ``metrics/n_modes``, left out)."""
    names = {k for r in runs for k in r.metrics}
    names -= {k for r in runs for k in names if (meta := r.meta(k)) is not None and meta.constant}
    return sorted(names, key=lambda k: (not k.startswith("metrics/"), k))


def default_metric(available: list[str]) -> str | None:
    """``metrics/modes`` if present, else ``metrics/fid``, else ``metrics/kmer_js`` (sequences), else the
    first available metric."""
    for preferred in ("metrics/modes", "metrics/fid", "metrics/kmer_js"):
        if preferred in available:
            return preferred
    return available[0] if available else None
