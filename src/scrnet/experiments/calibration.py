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

:func:`simulate_arms` draws a baseline and several variants sharing the seed effects, optionally with runs that
collapse (one arm only), and :func:`as_runs` turns an experiment into in-memory ``compare`` runs (configs that differ
in one key), so that the default tests and ``benchmarks/compare_calibration.py`` go through ``compare`` itself: the
family, Holm, the looks and the verdicts, not a copy of them.
"""

import functools
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
    rare_images: int = 0  # > 0: the last class is in only the first that many images


SCENARIOS = (
    Scenario("seed noise dominant", seed_sd=0.02, run_sd=0.012, image_sd=0.002, noise_sd=0.01),
    Scenario("image noise dominant", seed_sd=0.01, run_sd=0.002, image_sd=0.015, noise_sd=0.01),
    Scenario("both", seed_sd=0.015, run_sd=0.008, image_sd=0.008, noise_sd=0.01),
)
# a rare class: where a pooled-count metric is least like a mean over images (benchmarks/compare_calibration.py)
RARE_CLASS = Scenario("images, rare class", seed_sd=0.01, run_sd=0.002, image_sd=0.015, noise_sd=0.01,
                      rare_images=4)


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
    base, variant = simulate_arms(s, seeds, [0.0, delta], rng)
    return base, variant


def simulate_arms(s: Scenario, seeds: int, deltas: list[float], rng: np.random.Generator,
                  collapse: tuple[int, float, float] | None = None) -> list[np.ndarray]:
    """A baseline (delta 0, first) and one variant per further ``deltas`` entry, sharing the seed effects: per arm
    ``seeds x images x K x K`` counts. ``collapse = (arm, probability, drop)``: each run of that arm alone loses
    ``drop`` of accuracy with that probability (a run that collapsed), the others never. With ``s.rare_images``,
    the last class appears only in the first that many images."""
    k = len(s.base)
    pixels = np.full((s.images, k), s.pixels, np.int64)
    if s.rare_images:
        pixels[s.rare_images:, -1] = 0
    seed_effect = rng.normal(0, s.seed_sd, seeds)
    out = []
    for arm, d in enumerate(deltas):
        a = (np.asarray(s.base)[None, None, :] + d + seed_effect[:, None, None]
             + rng.normal(0, s.run_sd, (seeds, 1, 1)) + rng.normal(0, s.image_sd, (1, s.images, 1))
             + rng.normal(0, s.noise_sd, (seeds, s.images, k)))
        if collapse is not None and collapse[0] == arm:
            a = a - collapse[2] * (rng.random(seeds) < collapse[1])[:, None, None]
        right = np.rint(np.clip(a, 0, 1) * pixels).astype(np.int64)
        cm = np.zeros((seeds, s.images, k, k), np.int64)
        idx = np.arange(k)
        cm[:, :, idx, idx] = right
        cm[:, :, idx, (idx + 1) % k] = pixels - right
        out.append(cm)
    return out


ARM_KEY = "model.channels"  # the key the simulated arms differ in (any key compare groups by would do)


@functools.cache
def _flat_config(k: int, seed: int, arm: int) -> tuple:
    from ..config import config_to_dict, load_config
    from ..overrides import flatten

    cfg = load_config(None, ["model.name=scrnet_effl0", f"model.num_classes={k}", f"train.seed={seed}",
                             f"{ARM_KEY}={32 + 16 * arm}"])
    return tuple(flatten(config_to_dict(cfg)).items())


def arm_label(arm: int) -> str:
    """The compare label of simulated arm ``arm`` (0: the baseline)."""
    return f"{ARM_KEY}={32 + 16 * arm}"


def as_runs(arms: list[np.ndarray], seeds: list[int] | None = None, metrics_version: int | None = 1) -> list:
    """In-memory ``compare`` runs of one simulated experiment (arm-major, seed order as drawn)."""
    from ..evaluation.counts import PerImageCounts
    from ..evaluation.metrics import miou_from
    from .compare import Run

    out = []
    for arm, cms in enumerate(arms):
        k, images = cms.shape[-1], cms.shape[1]
        names = [f"class{c}" for c in range(k)]
        for s in range(cms.shape[0]):
            seed = s if seeds is None else seeds[s]
            inter = np.stack([np.diagonal(c) for c in cms[s]])
            union = cms[s].sum(1) + cms[s].sum(2) - inter
            counts = PerImageCounts.from_confusion([f"img{i:03d}.png" for i in range(images)], cms[s], inter, union)
            record = {"miou": float(miou_from(cms[s].sum(0))), "class_names": names, "dataset": "folder",
                      "split": "val", "iou": {}, "metrics_version": metrics_version}
            out.append(Run(f"arm{arm}/seed{seed}.json", record, counts, dict(_flat_config(k, seed, arm))))
    return out
