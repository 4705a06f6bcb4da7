"""The interval behind scrnet compare: exact properties of its parts, and its calibration on simulated experiments
with a known truth (experiments/calibration.py): false verdicts when nothing differs, coverage of a known difference,
power on a large one. The method before the paired t (a percentile bootstrap over 3-5 seeds) said "better"/"worse"
in 16-25% of null experiments and fails the calibration test below. The family (Holm), the looks and the
equivalence are calibrated through compare itself in test_decisions.py."""

import math

import numpy as np
import pytest

from scrnet.experiments.calibration import SCENARIOS, simulate, true_difference
from scrnet.experiments.compare import RunStats, interval_between
from scrnet.experiments.intervals import (
    Interval,
    difference_interval,
    holm,
    p_values,
    permutation_p,
    satterthwaite,
    seeds_needed,
    sign_flip_p,
    skewness,
    strongly_skewed,
    t975,
    t_cdf,
    t_quantile,
    verdict,
)


def test_t_quantiles_match_published_values_for_integer_and_real_degrees_of_freedom():
    # 0.975 quantiles from statistical tables (integer df) and from scipy.stats.t.ppf (real df)
    known = {1: 12.7062, 2: 4.3027, 4: 2.7764, 9: 2.2622, 30: 2.0423, 120: 1.9799, 1.5: 6.0167, 2.5: 3.5747,
             7.3: 2.3451, 50: 2.0086}
    for df, q in known.items():
        assert t975(df) == pytest.approx(q, abs=1e-4), df
    assert t975(math.inf) == pytest.approx(1.95996, abs=1e-5)
    assert t_cdf(0.0, 3.3) == pytest.approx(0.5) and t_cdf(-t975(6), 6) == pytest.approx(0.025, abs=1e-9)
    values = [t975(d) for d in (1, 1.5, 2, 3.7, 10, 45, 500, 1e6)]
    assert all(a > b for a, b in zip(values, values[1:]))
    with pytest.raises(ValueError):
        t975(0.5)


def test_satterthwaite_of_one_part_is_its_df_and_of_equal_parts_adds_them():
    assert satterthwaite([(2.0, 4)]) == pytest.approx(4)
    assert satterthwaite([(1.0, 4), (1.0, 4)]) == pytest.approx(8)
    assert satterthwaite([(1.0, 4), (0.0, 39)]) == pytest.approx(4)
    assert satterthwaite([(0.0, 4)]) == math.inf


def test_paired_interval_without_image_noise_is_the_paired_t_interval():
    group, base = np.array([0.71, 0.74, 0.70, 0.73, 0.75]), np.array([0.70, 0.70, 0.69, 0.72, 0.71])
    still = np.zeros((5, 50))  # no image moves any run: every leave-one-out value is the run's own
    iv = difference_interval(group, base, still + group[:, None], still + base[:, None], paired=True)
    d = group - base
    half = t975(4) * d.std(ddof=1) / math.sqrt(5)
    assert iv.diff == pytest.approx(d.mean()) and iv.low == pytest.approx(d.mean() - half)
    assert iv.high == pytest.approx(d.mean() + half) and iv.df == pytest.approx(4)
    assert iv.image_var == pytest.approx(0, abs=1e-20)
    assert iv.paired and iv.seeds == 5 and iv.per_seed == pytest.approx(list(d))
    assert iv.p == pytest.approx(2 * (1 - t_cdf(d.mean() / iv.se, 4)))


def loo_of_mean(x: np.ndarray) -> np.ndarray:
    """Leave-one-image-out values of runs whose metric is the mean of per-image values ``x`` (runs x images)."""
    n = x.shape[1]
    return (x.sum(1, keepdims=True) - x) / (n - 1)


def test_jackknife_of_a_mean_is_the_variance_of_the_mean_over_images():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.01, 40)  # an image that favours the group does so for every seed: no interaction
    g, b = 0.72 + shared[None, :].repeat(5, 0), np.full((5, 40), 0.70)
    iv = difference_interval(g.mean(1), b.mean(1), loo_of_mean(g), loo_of_mean(b), paired=True)
    assert iv.image_var == pytest.approx(np.var(shared, ddof=1) / 40) and iv.seed_var == pytest.approx(0, abs=1e-30)
    assert iv.df == pytest.approx(39) and iv.high - iv.low == pytest.approx(2 * t975(39) * math.sqrt(iv.image_var))
    unpaired = difference_interval(g.mean(1), b.mean(1), loo_of_mean(g), loo_of_mean(b), paired=False)
    assert unpaired.image_var == pytest.approx(iv.image_var)


def test_run_by_image_noise_is_counted_once_in_the_seed_part():
    """Each run's own response to the images moves its value (the seed part sees it); the jackknife of the mean
    over runs holds it again, divided by the runs. The correction takes exactly that share out."""
    rng = np.random.default_rng(1)
    own = rng.normal(0, 0.02, (6, 200))  # pure run-by-image noise, nothing shared by the runs
    g, b = 0.72 + own, np.full((6, 200), 0.70)
    iv = difference_interval(g.mean(1), b.mean(1), loo_of_mean(g), loo_of_mean(b), paired=True)
    naive = (200 - 1) / 200 * np.sum((loo_of_mean(g).mean(0) - loo_of_mean(g).mean()) ** 2)
    assert naive > 0 and iv.image_var < 0.1 * naive  # what stays is estimation noise around 0
    shared = rng.normal(0, 0.02, 200)
    g2 = g + shared
    iv2 = difference_interval(g2.mean(1), b.mean(1), loo_of_mean(g2), loo_of_mean(b), paired=True)
    assert iv2.image_var == pytest.approx(np.var(shared, ddof=1) / 200, rel=0.15)


def test_unpaired_interval_is_welch_and_one_run_is_image_only():
    a, b = np.array([0.70, 0.72, 0.74]), np.array([0.60, 0.66])
    flat = lambda v: np.repeat(v[:, None], 30, 1)  # noqa: E731
    iv = difference_interval(a, b, flat(a), flat(b), paired=False)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 2
    assert iv.se == pytest.approx(math.sqrt(va + vb))
    assert iv.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)) and iv.seeds == 2
    one = difference_interval(a[:1], b[:1], flat(a[:1]) + np.arange(30) * 1e-3, flat(b[:1]), paired=True)
    assert one.seed_var is None and one.df == 29 and one.image_var > 0 and verdict(one, min_seeds=2)[0] == \
        "inconclusive"
    with pytest.raises(ValueError, match="same number of runs"):
        difference_interval(a, b, flat(a), flat(b), paired=True)


def iv(low, high, seeds=5, df=4):
    return Interval((low + high) / 2, low, high, (high - low) / (2 * t975(df)), df, 0.0001, 0.0, True, seeds)


def test_verdicts_need_enough_seeds_and_a_stated_margin_for_equivalent_and_no_worse():
    assert verdict(iv(0.001, 0.05))[0] == "better" and verdict(iv(-0.05, -0.001))[0] == "worse"
    assert verdict(iv(-0.004, 0.01))[0] == "inconclusive"
    # margin (in the metric's units here): both one-sided tests at 5% (the 90% interval inside ±margin)
    tight = Interval(0.0, -0.002, 0.002, 0.001, 40, 1e-6, 0.0, True, 10)
    assert verdict(tight, margin=0.005)[0] == "equivalent" and verdict(tight)[0] == "inconclusive"
    lopsided = Interval(0.01, -0.002, 0.022, 0.006, 40, 1e-5, 0.0, True, 10)  # above -margin, not below +margin
    assert verdict(lopsided, margin=0.005)[0] == "no worse"
    assert verdict(iv(-0.03, 0.01), margin=0.005)[0] == "inconclusive"
    assert verdict(iv(0.01, 0.05, seeds=3)) == ("inconclusive", "3 seeds (a verdict needs 5)")
    assert verdict(iv(0.01, 0.05, seeds=3), min_seeds=3)[0] == "better"


def test_equivalence_is_the_two_one_sided_tests():
    x = Interval(0.001, 0, 0, 0.002, 20, 1e-6, 0.0, True, 10)
    margin = 0.005
    t = p_values(x, margin)
    assert t.equivalent == pytest.approx(max(1 - t_cdf((x.diff + margin) / x.se, 20),
                                             1 - t_cdf((margin - x.diff) / x.se, 20)))
    assert t.no_worse == pytest.approx(1 - t_cdf((x.diff + margin) / x.se, 20))
    # "equivalent" exactly when the 90% interval lies inside ±margin
    half = t_quantile(0.95, 20) * x.se
    assert (t.equivalent < 0.05) == (x.diff - half > -margin and x.diff + half < margin)


def test_holm_adjusts_step_down_and_never_below_the_raw_p():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5] and holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])
    p = list(np.random.default_rng(0).random(12))
    adjusted = holm(p)
    assert all(a >= r for a, r in zip(adjusted, p)) and max(adjusted) <= 1
    order = np.argsort(p)
    assert all(np.diff(np.array(adjusted)[order]) >= 0)


def test_sign_flip_and_permutation_p_are_exact_on_small_sets():
    assert sign_flip_p(np.array([1.0, 2.0, 3.0, 4.0, 5.0])) == pytest.approx(2 / 32)  # only all-positive/negative
    assert sign_flip_p(np.array([1.0, -1.0])) == 1.0
    assert permutation_p(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0])) == pytest.approx(2 / 20)
    assert 0 < sign_flip_p(np.linspace(0.1, 2, 20)) < 0.001  # beyond 16 seeds: drawn flips, the observed counted


def test_one_collapsed_seed_is_flagged_as_skewed():
    assert strongly_skewed(np.array([1.0, 1.2, 0.9, 1.1, -4.0]))
    assert not strongly_skewed(np.array([0.14, 2.58, 5.65, -3.79, 1.39]))  # wide, but not lopsided
    assert not strongly_skewed(np.array([1.0, -4.0, 2.0]))  # too few seeds to tell
    assert skewness(np.array([1.0, 1.0, 1.0])) is None


def test_seeds_needed_for_80_percent_power():
    assert seeds_needed(0.009, 0.0, 500, 0.005, 0.05) == 28  # paired sd 0.9 point, 0.5 point to detect
    assert 380 <= seeds_needed(0.035, 0.0, 500, 0.005, 0.05) <= 395  # sd 3.5
    assert seeds_needed(0.009, 0.0, 500, 0.005, 0.05 / 3) > 28  # a family of 3 needs more
    assert seeds_needed(0.009, 0.003 ** 2, 500, 0.005, 0.05) is None  # image se 0.3 point: no seeds resolve 0.5


def run_experiments(scenario, seeds: int, delta: float, experiments: int, rng) -> tuple[float, float, float]:
    """(share "better" or "worse", share of intervals holding the truth, share "better") over simulated
    experiments, through compare's own interval and verdict."""
    truth = true_difference(scenario, delta)
    decided = covered = better = 0
    for _ in range(experiments):
        base, variant = simulate(scenario, seeds, delta, rng)
        iv = interval_between([RunStats.from_confusion(cm) for cm in variant],
                              [RunStats.from_confusion(cm) for cm in base], "miou", paired=True)
        word, _ = verdict(iv)
        decided += word in ("better", "worse")
        better += word == "better"
        covered += iv.low <= truth <= iv.high
    return decided / experiments, covered / experiments, better / experiments


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_calibration_on_simulated_experiments(scenario):
    rng = np.random.default_rng(2026)
    false_verdicts, null_coverage, _ = run_experiments(scenario, 5, 0.0, 200, rng)
    assert false_verdicts <= 0.08, f"{false_verdicts:.1%} 'better'/'worse' with no true difference"
    assert null_coverage >= 0.90
    assert run_experiments(scenario, 3, 0.0, 60, rng)[0] == 0  # 3 seeds: never a verdict
    _, coverage, _ = run_experiments(scenario, 5, 0.01, 200, rng)
    assert coverage >= 0.90, f"the 95% interval held a known difference in {coverage:.1%} of experiments"
    assert run_experiments(scenario, 5, 0.08, 40, rng)[2] >= 0.95  # a large difference is found
