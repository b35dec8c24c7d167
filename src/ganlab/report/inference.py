"""Statistics over seeds for the comparison report: intervals, tests, probability of improvement, failure
rates and budget curves. Pure functions of numbers, so that each is checked against an independent
computation (tests/report/test_inference.py).

References:

- Agarwal et al. 2021, "Deep reinforcement learning at the edge of the statistical precipice" (NeurIPS):
  interquartile mean, percentile-bootstrap intervals over seeds, probability of improvement.
- Mann & Whitney 1947, "On a test of whether one of two random variables is stochastically larger than the
  other": the rank test between two configurations.
- Holm 1979, "A simple sequentially rejective multiple test procedure": the correction over the tests of
  the best configuration against each other one.
- Wilson 1927, "Probable inference, the law of succession, and statistical inference": the interval of a
  rate (divergence, collapse) that stays in [0, 1] and is not degenerate at 0 or n failures.
- Lucic et al. 2018, "Are GANs created equal?" and Kurach et al. 2019, "A large-scale study on
  regularization and normalization in GANs": the expected best score against the number of configurations
  tried (the computational budget).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

BOOTSTRAP_RESAMPLES = 10_000  # Agarwal et al. use 2,000-50,000; 10,000 keeps the 2.5% quantile stable
BOOTSTRAP_SEED = 0  # every interval is drawn from this seed, so a report is reproducible
ALPHA = 0.05  # two-sided level of every interval (95%) and test
Z_975 = float(stats.norm.ppf(1 - ALPHA / 2))
Z_POWER = float(stats.norm.ppf(0.8))  # 80% power for the seeds hint
MWU_ARE = 3 / math.pi  # asymptotic relative efficiency of Mann-Whitney U against the t-test, normal data


@dataclass(frozen=True)
class Summary:
    """Statistics of ``n`` values: mean, median, interquartile mean, sample std (``ddof=1``) and the 95%
    interval of the mean (``ci``, clipped to the metric's range; ``None`` for fewer than two values)."""

    n: int
    mean: float | None = None
    median: float | None = None
    iqm: float | None = None
    std: float | None = None
    ci: tuple[float, float] | None = None
    ci_method: str = "bootstrap-percentile"


def clip(value: float, low: float | None, high: float | None) -> float:
    """``value`` within ``[low, high]`` (``None``: unbounded end)."""
    value = max(value, low) if low is not None else value
    return min(value, high) if high is not None else value


def bootstrap_ci(
    values: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float]:
    """95% percentile-bootstrap interval of the mean: ``resamples`` resamples of the ``n`` values with
    replacement (indices from ``numpy.random.default_rng(seed).integers(0, n, (resamples, n))``), the 2.5%
    and 97.5% quantiles of their means (Efron 1979; Agarwal et al. 2021)."""
    values = np.asarray(values, dtype=float)
    index = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    low, high = np.percentile(values[index].mean(axis=1), [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(low), float(high)


def t_ci(values: np.ndarray) -> tuple[float, float]:
    """Student-t 95% interval of the mean, ``mean ± t(0.975, n-1) · std / √n``."""
    values = np.asarray(values, dtype=float)
    half = float(stats.t.ppf(1 - ALPHA / 2, len(values) - 1)) * values.std(ddof=1) / math.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


CI_METHODS = {"bootstrap": ("bootstrap-percentile", bootstrap_ci), "t": ("t", t_ci)}


def summarise(
    values: list[float], method: str = "bootstrap", low: float | None = None, high: float | None = None
) -> Summary:
    """:class:`Summary` of ``values``; ``method`` is a key of :data:`CI_METHODS`. The interquartile mean is
    ``scipy.stats.trim_mean(values, 0.25)`` (the mean of what is left after ``floor(n/4)`` values are cut
    at each end; with fewer than 4 values nothing is cut)."""
    name, interval = CI_METHODS[method]
    if not values:
        return Summary(0, ci_method=name)
    array = np.asarray(values, dtype=float)
    middle = (float(array.mean()), float(np.median(array)), float(stats.trim_mean(array, 0.25)))
    if len(array) == 1:
        return Summary(1, *middle, ci_method=name)
    ci = tuple(clip(v, low, high) for v in interval(array))
    return Summary(len(array), *middle, float(array.std(ddof=1)), ci, name)


def mann_whitney_p(a: list[float], b: list[float]) -> float:
    """Two-sided Mann-Whitney U p-value (``scipy.stats.mannwhitneyu``, exact without ties for small
    samples, else the normal approximation); 1.0 when all values are equal (the test is undefined)."""
    if len(set(a) | set(b)) == 1:
        return 1.0
    return float(stats.mannwhitneyu(a, b, alternative="two-sided").pvalue)


def min_exact_p(n: int, m: int) -> float:
    """The smallest two-sided p-value the exact Mann-Whitney U test can give with ``n`` and ``m`` values:
    complete separation, ``2 / C(n + m, n)`` (3 vs 3: 0.1, so it can never reach 0.05)."""
    return min(1.0, 2 / math.comb(n + m, n))


def holm(pvalues: list[float]) -> list[float]:
    """Holm (1979) adjusted p-values, in the input order: with the ``m`` p-values sorted ascending,
    ``p'_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``. Reject where ``p' < alpha``."""
    m = len(pvalues)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: pvalues[i])):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def _win(x: float, y: float, higher: bool) -> float:
    return 0.5 if x == y else float((x > y) == higher)


def prob_improvement(
    x: dict[int, float], y: dict[int, float], higher: bool, paired: bool | None = None
) -> float | None:
    """P(X better than Y) + P(X = Y) / 2 (Agarwal et al. 2021), from seed -> value maps. Paired by seed when
    both have the same seeds (``paired=None``: decide so): the share of seeds where X wins, ties counting
    half. Else over all ``n·m`` pairs, which is the Mann-Whitney statistic ``U / (n·m)``. ``None`` when
    either side is empty."""
    if not x or not y:
        return None
    if paired if paired is not None else set(x) == set(y):
        return float(np.mean([_win(x[s], y[s], higher) for s in x]))
    return float(np.mean([_win(a, b, higher) for a in x.values() for b in y.values()]))


def wilson(k: int, n: int) -> tuple[float, float] | None:
    """Wilson (1927) 95% score interval of a rate of ``k`` events in ``n`` trials:
    ``(k + z²/2) / (n + z²) ± z / (n + z²) · sqrt(k (n - k) / n + z² / 4)``; ``None`` for ``n = 0``."""
    if n == 0:
        return None
    z2 = Z_975**2
    centre = (k + z2 / 2) / (n + z2)
    half = Z_975 / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    # the ends are exactly 0 at k = 0 and 1 at k = n; rounding would leave 5.6e-17
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def seeds_to_separate(a: list[float], b: list[float]) -> int | None:
    """Roughly how many seeds per configuration a two-sided Mann-Whitney U test at 5% needs to separate two
    configurations with 80% power, if their means and spreads stay as observed: the normal-theory sample
    size of the two-sample t-test, ``n_t = 2 ((z_0.975 + z_0.8) s / Δ)²`` with Δ the difference of the means
    and ``s`` the pooled std, divided by the test's efficiency relative to the t-test (3/π), and at least
    4 (the fewest seeds at which the exact test can reach p < 0.05: ``2 / C(8, 4) = 0.029``). ``None``
    when the means are equal (no number of seeds separates them) or a side has fewer than 2 values."""
    if len(a) < 2 or len(b) < 2:
        return None
    delta = abs(float(np.mean(a)) - float(np.mean(b)))
    if delta == 0:
        return None
    spread = math.sqrt((np.var(a, ddof=1) + np.var(b, ddof=1)) / 2)
    n_t = 2 * ((Z_975 + Z_POWER) * spread / delta) ** 2
    return max(4, math.ceil(n_t / MWU_ARE))


@dataclass(frozen=True)
class BudgetCurve:
    """Expected best score of ``k`` configurations drawn at random (k = 1..K) with its 95% band."""

    k: list[int]
    expected: list[float]
    low: list[float]
    high: list[float]


def expected_best(scores: list[float], k: int, higher: bool = True) -> float:
    """Exact expected best of ``k`` of the ``K`` scores drawn without replacement: with the scores sorted
    from worst to best, ``sum_i s_(i) C(i - 1, k - 1) / C(K, k)`` (the i-th is the best of the draw when it
    is drawn with k - 1 of the i - 1 worse ones)."""
    ordered = sorted(scores, reverse=not higher)
    return sum(s * math.comb(i, k - 1) for i, s in enumerate(ordered)) / math.comb(len(ordered), k)


def budget_curve(
    scores: list[float], higher: bool, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> BudgetCurve:
    """Expected best score against the number of configurations tried (Lucic et al. 2018, Kurach et al.
    2019): the exact expectation (:func:`expected_best`), and as band the 2.5% and 97.5% quantiles of the
    best of ``k`` over ``resamples`` random orders of the ``K`` configurations."""
    values = np.asarray(scores, dtype=float) * (1 if higher else -1)
    orders = np.argsort(np.random.default_rng(seed).random((resamples, len(values))), axis=1)
    best = np.maximum.accumulate(values[orders], axis=1) * (1 if higher else -1)
    low, high = np.percentile(best, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)], axis=0)
    ks = list(range(1, len(values) + 1))
    return BudgetCurve(ks, [expected_best(scores, k, higher) for k in ks], low.tolist(), high.tolist())
