"""Intervals, p-values and verdicts for the difference between two groups of training runs scored on the same images.

Two sources of noise move an ablation's difference: the training seed (each run is one draw of the training
randomness) and the validation images (one draw from the population of images, shared by every run). The standard
error of the difference combines both:

- **seed part**: paired (both groups have the same seeds): the variance of the per-seed differences over ``S``;
  unpaired (Welch): each group's variance of its runs' values over its number of runs, summed;
- **image part**: a leave-one-image-out jackknife of the difference of the two groups' means (every run scored
  without image ``i``, for each ``i``), less the run-by-image interaction: the part of each run's response to an
  image that is its own is already in the seed part, and the jackknife of a mean over ``S`` runs holds it again
  (``image_part``: a two-way decomposition of the jackknife values into image effects and residuals).

The 95% interval is ``diff ± t(0.975, df) * se`` with Satterthwaite's degrees of freedom for the sum of the parts (the
image part with ``images - 1``); the two-sided p-value is the t's. With fewer than two runs per group the seed part
cannot be estimated: the interval is the image part alone and says so. Verdicts are made by
``scrnet.experiments.compare`` over a family of comparisons (Holm's step-down adjustment): "better"/"worse" when the
adjusted p is below the level, "equivalent" when both one-sided tests against a stated margin are (the 1 - 2 alpha
interval inside ±margin), "no worse" when the lower one is, else "inconclusive"; never with fewer than ``min_seeds``
seeds. Beside the t: an exact sign-flip (paired) or label-permutation (unpaired) p over the seeds, a flag when the
per-seed differences are strongly skewed (a collapsed seed), and the seeds an inconclusive comparison would need.
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


def normal_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def t_pdf(t: float, df: float) -> float:
    if math.isinf(df) or df > 1e7:
        return math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)
    return math.exp(log_norm - (df + 1) / 2 * math.log1p(t * t / df))


def t_quantile(q: float, df: float) -> float:
    """The ``q`` quantile of Student's t with ``df`` (real, >= 1; ``inf``: the normal's) degrees of freedom: Newton's
    method on :func:`t_cdf` inside a bracket that bisection keeps when a step would leave it (no scipy needed)."""
    if not 0 < q < 1:
        raise ValueError(f"a quantile needs 0 < q < 1, got {q}")
    if not df >= 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    if q < 0.5:
        return -t_quantile(1 - q, df)
    if q == 0.5:
        return 0.0
    normal = math.isinf(df) or df > 1e7
    cdf = normal_cdf if normal else (lambda x: t_cdf(x, df))
    low, high = 0.0, 1.0
    while cdf(high) < q:
        low, high = high, 2 * high
    x = (low + high) / 2
    for _ in range(200):
        f = cdf(x) - q
        if f < 0:
            low = x
        else:
            high = x
        if abs(f) < 1e-15 or high - low < 1e-13 * max(1.0, x):
            break
        step = f / t_pdf(x, math.inf if normal else df)
        x = x - step if low < x - step < high else (low + high) / 2
    return x


def t975(df: float) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (``df >= 1``, real; ``inf``: the
    normal's)."""
    return t_quantile(0.975, df)


def t_p_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with ``df`` degrees of freedom (``inf``: the normal)."""
    if math.isinf(df):
        return math.erfc(abs(t) / math.sqrt(2))
    return min(1.0, 2 * (1 - t_cdf(abs(t), df)))


def t_p_above(t: float, df: float) -> float:
    """P(T >= t): the one-sided p of a statistic ``t`` against "the difference is not above the null"."""
    if math.isinf(df):
        return 1 - normal_cdf(t)
    return 1 - t_cdf(t, df)


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
    per_seed: list[float] | None = None  # paired: the per-seed differences; None when unpaired

    @property
    def p(self) -> float:
        """Two-sided p of "no difference" (the t with ``df``); 1 when the standard error is 0 and diff is 0."""
        if self.se == 0:
            return 1.0 if self.diff == 0 else 0.0
        return t_p_two_sided(self.diff / self.se, self.df)

    def p_above(self, bound: float) -> float:
        """One-sided p of "the difference is at most ``bound``" (small: it is above ``bound``)."""
        if self.se == 0:
            return 0.0 if self.diff > bound else 1.0
        return t_p_above((self.diff - bound) / self.se, self.df)

    def p_below(self, bound: float) -> float:
        """One-sided p of "the difference is at least ``bound``" (small: it is below ``bound``)."""
        if self.se == 0:
            return 0.0 if self.diff < bound else 1.0
        return t_p_above((bound - self.diff) / self.se, self.df)

    def to_json(self) -> dict:
        out = asdict(self)
        out["df"] = None if math.isinf(self.df) else self.df
        return out


def image_part(loo: list[np.ndarray], signs: list[float]) -> float:
    """The image part of the variance of ``sum_g signs[g] * mean over runs of group g``, from each group's
    leave-one-image-out values ``loo[g]`` (``S_g x N``: run ``s`` scored without image ``i``).

    The jackknife of the combined mean, ``(N - 1) / N * sum_i (theta_(-i) - mean)^2``, holds the image effects every
    run shares and, again, each run's own response to the images (the run-by-image interaction), which already
    moves that run's value and so is in the seed part. Each group's jackknife values are split into image effects
    (the mean over its runs of the centred values) and residuals; the residuals' share of the image effects,
    ``sum r^2 / (S (S - 1))`` per group, is taken out (a group of one run keeps it: it has no seed part). Never
    below 0."""
    n = loo[0].shape[1]
    if n < 2:
        return 0.0
    combined = np.zeros(n)
    interaction = 0.0
    for values, sign in zip(loo, signs):
        centred = values - np.nanmean(values, axis=1, keepdims=True)
        effect = np.nanmean(centred, axis=0)
        combined += sign * effect
        runs = values.shape[0]
        if runs > 1:
            interaction += float(np.nansum((centred - effect) ** 2)) / (runs * (runs - 1))
    combined -= combined.mean()
    return max(0.0, (n - 1) / n * (float(np.nansum(combined ** 2)) - interaction))


def difference_interval(group: np.ndarray, base: np.ndarray, group_loo: np.ndarray, base_loo: np.ndarray,
                        paired: bool) -> Interval:
    """The 95% interval of mean(group) - mean(base).

    ``group``/``base``: each run's metric on the images as scored (``S_g`` / ``S_b`` values); ``*_loo``: the same
    runs' metric without each image in turn, ``S x N``. ``paired``: row ``s`` of ``group`` and of ``base`` share a
    seed (equal counts required); the image part then comes from the per-seed differences."""
    group, base = np.asarray(group, np.float64), np.asarray(base, np.float64)
    group_loo, base_loo = np.asarray(group_loo, np.float64), np.asarray(base_loo, np.float64)
    if paired and group.shape != base.shape:
        raise ValueError(f"paired groups need the same number of runs, got {group.size} and {base.size}")
    images = group_loo.shape[1]
    image_var = image_part([group_loo - base_loo], [1.0]) if paired else image_part([group_loo, base_loo], [1.0, -1.0])
    parts = [(image_var, max(images - 1, 1))]
    per_seed = None
    if paired:
        d = group - base
        diff = float(np.mean(d))
        seed_var = float(np.var(d, ddof=1) / d.size) if d.size > 1 else None
        if seed_var is not None:
            parts.append((seed_var, d.size - 1))
        seeds = d.size
        per_seed = [float(x) for x in d]
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
    df = max(1.0, satterthwaite(parts))
    half = t975(df) * se
    return Interval(diff, diff - half, diff + half, se, df, seed_var, image_var, paired, seeds, per_seed)


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (same order as given): the ``j``-th smallest of ``m`` is multiplied by
    ``m - j + 1``, made non-decreasing and capped at 1. "Adjusted p < alpha" keeps the chance of any false claim in
    the family at most alpha, whatever the dependence between the comparisons."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


EXACT_PERMUTATIONS = 1 << 16  # enumerate every sign flip / relabelling up to this many; beyond it a fixed sample
SAMPLED_PERMUTATIONS = 20000


def sign_flip_p(d: np.ndarray) -> float:
    """Two-sided p of "the per-seed differences ``d`` are symmetric about 0": the share of the ``2^S`` sign flips
    whose mean is at least as far from 0 as the observed one (exact up to 16 seeds, else 20000 flips drawn with a
    fixed seed, the observed one counted)."""
    d = np.asarray(d, np.float64)
    observed = abs(d.mean()) - 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))
    if 2 ** d.size <= EXACT_PERMUTATIONS:
        signs = 1 - 2 * ((np.arange(2 ** d.size)[:, None] >> np.arange(d.size)) & 1)
        return float(np.mean(np.abs(signs @ d) / d.size >= observed))
    signs = np.random.default_rng(0).choice([-1.0, 1.0], size=(SAMPLED_PERMUTATIONS, d.size))
    return float((np.sum(np.abs(signs @ d) / d.size >= observed) + 1) / (SAMPLED_PERMUTATIONS + 1))


def permutation_p(group: np.ndarray, base: np.ndarray) -> float:
    """Two-sided p of "the runs' labels are exchangeable" for unpaired groups: the share of relabellings whose
    difference of means is at least as far from 0 as the observed one (exact up to 65536 relabellings)."""
    values = np.concatenate([np.asarray(group, np.float64), np.asarray(base, np.float64)])
    k, n = len(group), len(values)
    observed = abs(values[:k].mean() - values[k:].mean()) - 1e-12 * max(1.0, float(np.abs(values).max()))
    if math.comb(n, k) <= EXACT_PERMUTATIONS:
        import itertools

        total = values.sum()
        sums = np.array([values[list(idx)].sum() for idx in itertools.combinations(range(n), k)])
        diffs = sums / k - (total - sums) / (n - k)
        return float(np.mean(np.abs(diffs) >= observed))
    rng = np.random.default_rng(0)
    hits = 1
    for _ in range(SAMPLED_PERMUTATIONS):
        perm = rng.permutation(values)
        hits += abs(perm[:k].mean() - perm[k:].mean()) >= observed
    return float(hits / (SAMPLED_PERMUTATIONS + 1))


SKEW_Z = 1.96  # flag per-seed differences whose skewness is this many of its standard errors under normality


def skewness(d: np.ndarray) -> float | None:
    """The adjusted Fisher-Pearson skewness G1 of ``d`` (``None`` below 3 values or with no spread)."""
    d = np.asarray(d, np.float64)
    n = d.size
    if n < 3:
        return None
    m2 = float(np.mean((d - d.mean()) ** 2))
    if m2 <= 0:
        return None
    g1 = float(np.mean((d - d.mean()) ** 3)) / m2 ** 1.5
    return g1 * math.sqrt(n * (n - 1)) / (n - 2)


def strongly_skewed(d: np.ndarray) -> bool:
    """True when ``d`` (at least 5 values) is skewed beyond ``SKEW_Z`` standard errors of G1 under normality: one
    seed far from the others, as when one arm collapsed in one run. The t then misstates its error rate; read the
    permutation p."""
    g = skewness(d)
    n = len(d)
    if g is None or n < 5:
        return False
    se = math.sqrt(6 * n * (n - 1) / ((n - 2) * (n + 1) * (n + 3)))
    return abs(g) > SKEW_Z * se


POWER = 0.8


def seeds_needed(seed_sd: float, image_var: float, images: int, effect: float, alpha: float,
                 limit: int = 10000) -> int | None:
    """Paired seeds for which a true difference of ``effect`` is declared at two-sided level ``alpha`` with
    probability ``POWER`` (80%), given the per-seed difference sd and the image part of the variance (which more
    seeds do not shrink): the smallest ``n`` with ``(t_(1 - alpha/2) + t_power) * se(n) <= effect``, the t's with
    Satterthwaite's degrees of freedom (the left side falls with ``n``: found by bisection). ``None`` when no number
    of seeds up to ``limit`` suffices (the image part alone is too large: score on more images)."""
    if effect <= 0:
        raise ValueError(f"the effect to detect must be positive, got {effect}")

    def enough(n: int) -> bool:
        parts = [(seed_sd ** 2 / n, n - 1), (image_var, max(images - 1, 1))]
        se = math.sqrt(sum(v for v, _ in parts))
        df = max(1.0, satterthwaite(parts))
        return (t_quantile(1 - alpha / 2, df) + t_quantile(POWER, df)) * se <= effect

    if not enough(limit):
        return None
    low, high = 1, limit  # enough(high), and n = 1 has no seed variance to decide with
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


ALPHA = 0.05


@dataclass
class PValues:
    """A comparison's p-values, each adjusted over its family (Holm) when it belongs to one: ``diff`` two-sided
    against no difference; with a margin, ``equivalent`` (the larger of the two one-sided p against ±margin: both
    tests must reject) and ``no_worse`` (one-sided against -margin)."""
    diff: float
    equivalent: float | None = None
    no_worse: float | None = None


def p_values(interval: Interval, margin: float | None) -> PValues:
    """The unadjusted :class:`PValues` of one interval (``margin`` in the metric's units)."""
    if margin is None:
        return PValues(interval.p)
    return PValues(interval.p, max(interval.p_above(-margin), interval.p_below(margin)), interval.p_above(-margin))


def decide(interval: Interval, tests: PValues, level: float = ALPHA, min_seeds: int = MIN_SEEDS,
           margin: float | None = None) -> tuple[str, str]:
    """``(verdict, why)`` from a comparison's (family-adjusted) p-values at ``level``: "better"/"worse" when the
    difference test rejects, else "equivalent" when both one-sided tests against ±margin do (the ``1 - 2 level``
    interval inside ±margin), else "no worse" when the one against -margin does, else "inconclusive"; always
    "inconclusive" below ``min_seeds`` seeds or without a seed part. ``margin`` in the metric's units."""
    if interval.seeds < min_seeds or interval.seed_var is None:
        return "inconclusive", f"{interval.seeds} seed{'s' if interval.seeds != 1 else ''} (a verdict needs " \
                               f"{min_seeds})"
    if tests.diff < level:
        return ("better" if interval.diff > 0 else "worse"), f"p {tests.diff:.3g} < {level:.3g}"
    if margin is not None and tests.equivalent is not None and tests.equivalent < level:
        return "equivalent", (f"both one-sided p <= {tests.equivalent:.3g} < {level:.3g} against ±{100 * margin:g} "
                              f"points")
    if margin is not None and tests.no_worse is not None and tests.no_worse < level:
        return "no worse", f"one-sided p {tests.no_worse:.3g} < {level:.3g} against -{100 * margin:g} points"
    return "inconclusive", f"p {tests.diff:.3g} >= {level:.3g}"


def verdict(interval: Interval, min_seeds: int = MIN_SEEDS, margin: float | None = None,
            level: float = ALPHA) -> tuple[str, str]:
    """The verdict of one comparison alone (a family of one): :func:`decide` on its unadjusted p-values."""
    return decide(interval, p_values(interval, margin), level, min_seeds, margin)
