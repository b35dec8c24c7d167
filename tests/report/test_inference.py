"""The report's statistics against independent computations: numpy loops, scipy, hand formulas."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats

from ganlab.report import inference


def test_bootstrap_interval_is_the_direct_computation_with_the_same_seed():
    values = np.array([20.0, 22.0, 24.0, 19.0])
    rng = np.random.default_rng(inference.BOOTSTRAP_SEED)
    means = []
    for _ in range(inference.BOOTSTRAP_RESAMPLES):  # one resample at a time, as the textbook does
        means.append(np.mean(values[rng.integers(0, len(values), size=len(values))]))
    # rng.integers(0, n, size=(B, n)) draws the same stream row after row
    assert inference.bootstrap_ci(values) == pytest.approx(
        tuple(np.percentile(means, [2.5, 97.5])), rel=1e-12
    )
    assert inference.BOOTSTRAP_RESAMPLES >= 10_000


def test_bootstrap_interval_agrees_with_scipy():
    values = np.random.default_rng(1).normal(10.0, 2.0, size=12)
    ours = inference.bootstrap_ci(values)
    theirs = stats.bootstrap((values,), np.mean, n_resamples=20_000, method="percentile", random_state=3)
    interval = theirs.confidence_interval
    assert ours == pytest.approx((interval.low, interval.high), abs=0.05 * values.std())


def test_summary_numbers_and_clipping_to_the_declared_range():
    values = [24.0, 25.0, 25.0]
    s = inference.summarise(values, "t", 0, 25)
    half = stats.t.ppf(0.975, 2) * np.std(values, ddof=1) / math.sqrt(3)  # 4.3027 * 0.57735 / 1.732
    assert (s.n, s.mean, s.median, s.std) == (3, pytest.approx(74 / 3), 25.0, pytest.approx(math.sqrt(1 / 3)))
    assert s.ci == (pytest.approx(74 / 3 - half), 25)  # the upper end would be 26.1 > 25 possible
    assert s.ci_method == "t"
    boot = inference.summarise([0.0, 0.01, 0.3], "bootstrap", 0, 1)
    assert boot.ci[0] >= 0 and boot.ci_method == "bootstrap-percentile"
    assert inference.summarise([3.0]).ci is None and inference.summarise([]).mean is None


def test_interquartile_mean():
    values = [1.0, 2.0, 3.0, 4.0, 100.0, 5.0, 6.0, 7.0]  # sorted: cut 1, 2 and 7, 100 -> mean of 3..6
    assert inference.summarise(values).iqm == pytest.approx(4.5)
    assert inference.summarise([1.0, 2.0, 9.0]).iqm == pytest.approx(4.0)  # n < 4: nothing cut


@pytest.mark.parametrize(
    "a,b",
    [
        ([20, 22, 24], [10, 14, 9]),
        ([1, 2, 3, 4], [2, 3, 4, 5, 6]),
        ([1, 1, 2, 3], [1, 2, 2, 5]),
        ([0.1] * 3, [0.2] * 3),
    ],
)
def test_mann_whitney_p_is_scipys(a, b):
    assert inference.mann_whitney_p(a, b) == pytest.approx(
        stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    )


def test_three_against_three_never_reaches_five_percent():
    assert inference.min_exact_p(3, 3) == pytest.approx(0.1)
    assert stats.mannwhitneyu([4, 5, 6], [1, 2, 3], method="exact").pvalue == pytest.approx(0.1)
    assert inference.min_exact_p(4, 4) == pytest.approx(2 / 70)
    assert inference.mann_whitney_p([5.0] * 3, [5.0] * 3) == 1.0


def test_holm_against_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> max so far 0.06
    assert inference.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert inference.holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    assert inference.holm([]) == []


def test_probability_of_improvement_on_constructed_cases():
    better, worse = {0: 5.0, 1: 6.0, 2: 7.0}, {0: 1.0, 1: 2.0, 2: 3.0}
    assert inference.prob_improvement(better, worse, higher=True) == 1.0
    assert inference.prob_improvement(better, worse, higher=False) == 0.0
    assert inference.prob_improvement(worse, dict(worse), higher=True) == 0.5  # ties count half
    # paired by seed: seed 0 loses, 1 wins, 2 ties -> (0 + 1 + 0.5) / 3
    x, y = {0: 1.0, 1: 5.0, 2: 3.0}, {0: 2.0, 1: 4.0, 2: 3.0}
    assert inference.prob_improvement(x, y, higher=True) == pytest.approx(0.5)
    # unpaired (different seeds): U / (n m), scipy's U of the first sample
    y_other = {7: 2.0, 8: 4.0, 9: 3.0, 10: 0.5}
    u = stats.mannwhitneyu(list(x.values()), list(y_other.values())).statistic
    assert inference.prob_improvement(x, y_other, higher=True) == pytest.approx(u / 12)
    assert inference.prob_improvement({}, y, higher=True) is None


def _wilson_textbook(k: int, n: int) -> tuple[float, float]:
    """(p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), the form in Wilson (1927) / Agresti & Coull."""
    z, p = stats.norm.ppf(0.975), k / n
    centre, half = p + z**2 / (2 * n), z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return (centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)


@pytest.mark.parametrize("k,n", [(0, 3), (1, 3), (2, 10), (3, 3), (7, 50)])
def test_wilson_interval_against_the_textbook_form(k, n):
    assert inference.wilson(k, n) == pytest.approx(_wilson_textbook(k, n), abs=1e-12)
    assert inference.wilson(0, 3)[0] == 0.0 and inference.wilson(3, 3)[1] == 1.0


def test_wilson_known_value():
    assert inference.wilson(2, 10) == pytest.approx((0.0567, 0.5098), abs=1e-4)  # printed tables
    assert inference.wilson(0, 0) is None


@pytest.mark.parametrize("big", [5, 8])
def test_expected_best_of_uniform_scores_in_closed_form(big):
    scores = [float(v) for v in np.random.default_rng(0).permutation(np.arange(1, big + 1))]
    for k in range(1, big + 1):
        # the best of k of {1..K} drawn without replacement: max has mean k (K+1)/(k+1), min (K+1)/(k+1)
        assert inference.expected_best(scores, k) == pytest.approx(k * (big + 1) / (k + 1))
        assert inference.expected_best(scores, k, higher=False) == pytest.approx((big + 1) / (k + 1))


def test_budget_curve_against_enumeration():
    scores = [0.3, 0.9, 0.1, 0.5, 0.5, 0.2]
    curve = inference.budget_curve(scores, higher=True)
    for k, expected in zip(curve.k, curve.expected, strict=True):
        draws = [max(c) for c in itertools.combinations(scores, k)]
        assert expected == pytest.approx(np.mean(draws))
    # the band: best of 1 ranges over the scores; all K tried always finds the best
    assert curve.low[0] == pytest.approx(0.1) and curve.high[0] == pytest.approx(0.9)
    assert curve.low[-1] == curve.high[-1] == pytest.approx(0.9)
    resampled = inference.budget_curve(scores, higher=False)
    assert resampled.expected[-1] == pytest.approx(0.1) and resampled.expected[0] == pytest.approx(
        np.mean(scores)
    )


def test_seeds_to_separate_against_the_formula():
    a, b = [0.0, 1.0, 2.0], [2.0, 3.0, 4.0]  # means 1 and 3, std 1 each
    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    n_t = 2 * (z * 1.0 / 2.0) ** 2  # 3.92
    assert inference.seeds_to_separate(a, b) == max(4, math.ceil(n_t * math.pi / 3))  # 5
    close = [10.0, 11.0, 12.0], [10.5, 11.5, 12.5]  # delta 0.5: n_t = 62.8 -> 66
    assert inference.seeds_to_separate(*close) == math.ceil(2 * (z * 1.0 / 0.5) ** 2 * math.pi / 3)
    assert inference.seeds_to_separate([1.0, 2.0], [1.0, 2.0]) is None
    assert inference.seeds_to_separate([1.0], [2.0, 3.0]) is None
