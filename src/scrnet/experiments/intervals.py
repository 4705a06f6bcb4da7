"""Intervals and verdicts for the difference between two groups of training runs scored on the same images.

Two sources of noise move an ablation's difference: the training seed (each run is one draw of the training
randomness) and the validation images (one draw from the population of images, shared by every run). The standard
error of the difference combines both:

- **seed part**: paired (both groups have the same seeds): the variance of the per-seed differences over ``S``;
  unpaired (Welch): each group's variance of its runs' values over its number of runs, summed;
- **image part**: the variance, over bootstrap draws of the images, of the difference of the two groups' means.
  One draw is one weight vector over the images, shared by every run of both groups (every run was scored on the
  same images, so an image that favours one group does so in every seed).

The interval is ``diff ± t(0.975, df) * se`` with Satterthwaite's degrees of freedom for the sum of the parts (the
image part with ``images - 1``). With fewer than two runs per group the seed part cannot be estimated: the interval
is the image part alone and says so. Verdicts ("better", "worse", "no worse" against a stated margin, else
"inconclusive") are only given with at least ``min_seeds`` seeds; with fewer the verdict is "inconclusive" and
``why`` names the number.
"""

import math
from dataclasses import asdict, dataclass

import numpy as np

MIN_SEEDS = 5  # the default for a verdict


def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified Lentz)."""
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    if x > (a + 1) / (a + b + 2):
        return 1.0 - _betainc(b, a, 1.0 - x)
    log_front = a * math.log(x) + b * math.log1p(-x) - math.log(a) - (math.lgamma(a) + math.lgamma(b)
                                                                         - math.lgamma(a + b))
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    f = d
    for m in range(1, 500):
        for numerator in (m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            f *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return math.exp(log_front) * f


def t_cdf(t: float, df: float) -> float:
    """P(T <= t) for Student's t with ``df`` (real, > 0) degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df >= 1``, real; ``inf``: the
    normal's), by bisection on :func:`t_cdf` (no scipy needed)."""
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if math.isinf(df) or df > 1e7:
        return 1.959963984540054
    low, high = 1.959963984540054, 12.7062047361747  # the quantiles at df = inf and df = 1
    for _ in range(80):
        mid = (low + high) / 2
        low, high = (mid, high) if t_cdf(mid, df) < 0.975 else (low, mid)
    return (low + high) / 2


def satterthwaite(parts: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of variance estimates ``[(variance, its df), ...]``; ``inf`` if all are 0."""
    total = sum(v for v, _ in parts)
    denominator = sum(v * v / d for v, d in parts if v > 0)
    return math.inf if denominator == 0 else total * total / denominator


@dataclass
class Interval:
    diff: float  # mean of the group's values minus the baseline's (paired: mean of per-seed differences)
    low: float
    high: float
    se: float
    df: float
    seed_var: float | None  # the seed part of se**2 (None: not estimable with one run per group)
    image_var: float  # the image part of se**2
    paired: bool
    seeds: int  # paired: seeds in both groups; unpaired: the smaller group's runs

    def to_json(self) -> dict:
        out = asdict(self)
        out["df"] = None if math.isinf(self.df) else self.df
        return out


def difference_interval(group: np.ndarray, base: np.ndarray, group_draws: np.ndarray, base_draws: np.ndarray,
                        paired: bool, images: int) -> Interval:
    """The 95% interval of mean(group) - mean(base).

    ``group``/``base``: each run's metric on the images as scored (``S_g`` / ``S_b`` values); ``*_draws``: the same
    runs' metric under the shared image bootstrap, ``S x B`` (row ``s`` of both arrays used the same ``B`` weight
    vectors). ``paired``: row ``s`` of ``group`` and of ``base`` share a seed (equal counts required)."""
    group, base = np.asarray(group, np.float64), np.asarray(base, np.float64)
    if paired and group.shape != base.shape:
        raise ValueError(f"paired groups need the same number of runs, got {group.size} and {base.size}")
    draws = np.nanmean(group_draws, axis=0) - np.nanmean(base_draws, axis=0)
    draws = draws[np.isfinite(draws)]
    image_var = float(np.var(draws, ddof=1)) if draws.size > 1 else 0.0
    parts = [(image_var, max(images - 1, 1))]
    if paired:
        d = group - base
        diff = float(np.mean(d))
        seed_var = float(np.var(d, ddof=1) / d.size) if d.size > 1 else None
        if seed_var is not None:
            parts.append((seed_var, d.size - 1))
        seeds = d.size
    else:
        diff = float(np.mean(group) - np.mean(base))
        if group.size > 1 and base.size > 1:
            a, b = np.var(group, ddof=1) / group.size, np.var(base, ddof=1) / base.size
            parts += [(float(a), group.size - 1), (float(b), base.size - 1)]
            seed_var = float(a + b)
        else:
            seed_var = None
        seeds = min(group.size, base.size)
    se = math.sqrt(sum(v for v, _ in parts))
    df = satterthwaite(parts)
    half = t975(df) * se
    return Interval(diff, diff - half, diff + half, se, df, seed_var, image_var, paired, seeds)


def verdict(interval: Interval, min_seeds: int = MIN_SEEDS, margin: float | None = None) -> tuple[str, str]:
    """``(verdict, why)``: "better" / "worse" when the interval excludes 0, "no worse" when it lies above
    ``-margin`` (a margin the user stated, same units as the metric), else "inconclusive"; always "inconclusive"
    below ``min_seeds`` seeds or without a seed part."""
    if interval.seeds < min_seeds or interval.seed_var is None:
        return "inconclusive", f"{interval.seeds} seed{'s' if interval.seeds != 1 else ''} (a verdict needs " \
                               f"{min_seeds})"
    if interval.low > 0:
        return "better", "the 95% interval lies above 0"
    if interval.high < 0:
        return "worse", "the 95% interval lies below 0"
    if margin is not None and interval.low > -margin:
        return "no worse", f"the 95% interval lies above -{margin:g}"
    return "inconclusive", "the 95% interval contains 0"


def image_weights(images: int, samples: int, rng: np.random.Generator) -> np.ndarray:
    """``samples x images`` bootstrap multiplicities (each row sums to ``images``)."""
    return rng.multinomial(images, np.full(images, 1.0 / images), size=samples).astype(np.float64)
