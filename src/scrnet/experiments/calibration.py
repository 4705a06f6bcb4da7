"""Simulated ablation experiments with a known truth, to check that ``scrnet compare``'s intervals and verdicts mean
what they say (the default tests and ``benchmarks/compare_calibration.py``).

One experiment: two groups (a baseline and a variant) of ``seeds`` training runs each, every run scored on the same
``images`` validation images, as per-image confusion matrices. Each class ``c`` of each image has ``pixels`` pixels,
of which a fraction ``a`` is labelled right and the rest is confused with the next class, so the class's IoU over
pooled counts is ``A / (2 - A)`` with ``A`` the pooled fraction. The fraction is

    a[g, s, i, c] = base[c] + delta[g] + seed[s] + run[g, s] + image[g, i] + noise[g, s, i, c]

with normal effects: ``seed`` shared by both groups' runs of one seed (what pairing cancels), ``run`` each run's
own training noise, ``image`` a group's own response to an image, the same in every seed (what an image bootstrap
per run undercounts), ``noise`` the rest. The true difference of the expected mIoU of the two groups over
infinitely many images and seeds is :func:`true_difference` (Gauss-Hermite quadrature over the seed effects).
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Scenario:
    name: str
    seed_sd: float  # shared by both groups' runs of one seed
    run_sd: float  # each run's own training noise
    image_sd: float  # a group's response to an image, shared across its seeds
    noise_sd: float  # per run, image and class
    base: tuple[float, ...] = (0.90, 0.80, 0.70)
    images: int = 40
    pixels: int = 2000


SCENARIOS = (
    Scenario("seed noise dominant", seed_sd=0.02, run_sd=0.012, image_sd=0.002, noise_sd=0.01),
    Scenario("image noise dominant", seed_sd=0.01, run_sd=0.002, image_sd=0.015, noise_sd=0.01),
    Scenario("both", seed_sd=0.015, run_sd=0.008, image_sd=0.008, noise_sd=0.01),
)


def class_iou(a: np.ndarray) -> np.ndarray:
    return a / (2 - a)


def true_difference(s: Scenario, delta: float) -> float:
    """E[mIoU(variant)] - E[mIoU(baseline)] over infinitely many images and seeds (the estimand)."""
    x, w = np.polynomial.hermite_e.hermegauss(60)
    w = w / w.sum()
    v = np.sqrt(s.seed_sd ** 2 + s.run_sd ** 2) * x
    base = np.asarray(s.base)

    def expected(d: float) -> float:
        return float(w @ class_iou(base[None, :] + d + v[:, None]).mean(1))

    return expected(delta) - expected(0.0)


def simulate(s: Scenario, seeds: int, delta: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One experiment: (baseline, variant) per-image confusion matrices, each ``seeds x images x K x K`` (int)."""
    k = len(s.base)
    seed_effect = rng.normal(0, s.seed_sd, seeds)
    out = []
    for d in (0.0, delta):
        a = (np.asarray(s.base)[None, None, :] + d + seed_effect[:, None, None]
             + rng.normal(0, s.run_sd, (seeds, 1, 1)) + rng.normal(0, s.image_sd, (1, s.images, 1))
             + rng.normal(0, s.noise_sd, (seeds, s.images, k)))
        right = np.rint(np.clip(a, 0, 1) * s.pixels).astype(np.int64)
        cm = np.zeros((seeds, s.images, k, k), np.int64)
        idx = np.arange(k)
        cm[:, :, idx, idx] = right
        cm[:, :, idx, (idx + 1) % k] = s.pixels - right
        out.append(cm)
    return out[0], out[1]
