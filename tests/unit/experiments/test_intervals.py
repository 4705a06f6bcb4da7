"""The interval behind scrnet compare: exact properties of its parts, and its calibration on simulated experiments
with a known truth (experiments/calibration.py): false verdicts when nothing differs, coverage of a known difference,
power on a large one. The method it replaced (a percentile bootstrap over 3-5 seeds) said "better"/"worse" in
16-25% of null experiments and fails the calibration test below."""

import math

import numpy as np
import pytest

from scrnet.experiments.calibration import SCENARIOS, simulate, true_difference
from scrnet.experiments.compare import RunStats, interval_between
from scrnet.experiments.intervals import (
    Interval,
    difference_interval,
    image_weights,
    satterthwaite,
    t975,
    t_cdf,
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
    still = np.zeros((5, 100))  # no image variation at all
    iv = difference_interval(group, base, still + group[:, None], still + base[:, None], paired=True, images=50)
    d = group - base
    half = t975(4) * d.std(ddof=1) / math.sqrt(5)
    assert iv.diff == pytest.approx(d.mean()) and iv.low == pytest.approx(d.mean() - half)
    assert iv.high == pytest.approx(d.mean() + half) and iv.df == pytest.approx(4)
    assert iv.image_var == pytest.approx(0, abs=1e-20)
    assert iv.paired and iv.seeds == 5


def test_image_variance_is_shared_by_the_runs_and_widens_the_interval():
    rng = np.random.default_rng(0)
    shared = rng.normal(0, 0.01, 200)  # a draw that favours the group does so for every seed
    group, base = np.full(5, 0.72), np.full(5, 0.70)
    iv = difference_interval(group, base, group[:, None] + shared, base[:, None] + 0 * shared, True, images=40)
    assert iv.image_var == pytest.approx(np.var(shared, ddof=1)) and iv.seed_var == 0
    assert iv.df == pytest.approx(39) and iv.high - iv.low == pytest.approx(2 * t975(39) * math.sqrt(iv.image_var))


def test_unpaired_interval_is_welch_and_one_run_is_image_only():
    a, b = np.array([0.70, 0.72, 0.74]), np.array([0.60, 0.66])
    flat = lambda v: np.repeat(v[:, None], 10, 1)  # noqa: E731
    iv = difference_interval(a, b, flat(a), flat(b), paired=False, images=30)
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 2
    assert iv.se == pytest.approx(math.sqrt(va + vb))
    assert iv.df == pytest.approx((va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 1)) and iv.seeds == 2
    one = difference_interval(a[:1], b[:1], flat(a[:1]) + np.arange(10) * 1e-3, flat(b[:1]), paired=True, images=30)
    assert one.seed_var is None and one.df == 29 and verdict(one, min_seeds=2)[0] == "inconclusive"
    with pytest.raises(ValueError, match="same number of runs"):
        difference_interval(a, b, flat(a), flat(b), paired=True, images=30)


def test_verdicts_need_enough_seeds_and_a_stated_margin_for_no_worse():
    def iv(low, high, seeds=5):
        return Interval((low + high) / 2, low, high, 0.01, 4, 0.0001, 0.0, True, seeds)

    assert verdict(iv(0.001, 0.02)) == ("better", "the 95% interval lies above 0")
    assert verdict(iv(-0.02, -0.001))[0] == "worse"
    assert verdict(iv(-0.004, 0.01))[0] == "inconclusive"
    assert verdict(iv(-0.004, 0.01), margin=0.005)[0] == "no worse"
    assert verdict(iv(-0.006, 0.01), margin=0.005)[0] == "inconclusive"
    assert verdict(iv(0.01, 0.02, seeds=3)) == ("inconclusive", "3 seeds (a verdict needs 5)")
    assert verdict(iv(0.01, 0.02, seeds=3), min_seeds=3)[0] == "better"


def run_experiments(scenario, seeds: int, delta: float, experiments: int, rng) -> tuple[float, float, float]:
    """(share "better" or "worse", share of intervals holding the truth, share "better") over simulated
    experiments, through compare's own interval and verdict."""
    truth = true_difference(scenario, delta)
    decided = covered = better = 0
    for _ in range(experiments):
        base, variant = simulate(scenario, seeds, delta, rng)
        weights = image_weights(scenario.images, 300, rng)
        iv = interval_between([RunStats(cm) for cm in variant], [RunStats(cm) for cm in base], "miou", weights,
                              paired=True)
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
