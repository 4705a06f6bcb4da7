"""Is ``scrnet compare`` calibrated? Simulated experiments with a known truth, written as real eval JSON + npz files
and compared through the CLI, and the power of the paired t for the seeds a user can afford.

1. Calibration: for each scenario of ``scrnet.experiments.calibration`` and 3 or 5 seeds, ``--experiments`` experiments
   with no true difference are written to disk as ``scrnet eval --json`` writes them, compared with
   ``scrnet compare ... --json``, and counted: the share of "better"/"worse" verdicts (a calibrated 95% method:
   about 5%; never with fewer seeds than ``--min-seeds``) and of intervals holding 0. As many experiments with a
   known difference go through compare's interval in-process (loading files is the slow part): the share of
   intervals holding the true difference.
2. Power: the share of experiments in which a true difference of 0.5, 1, 1.5 or 2 seed-sd (the sd of the per-seed
   paired differences) is called "better", by number of seeds, with the interval compare uses (image noise off).

    python benchmarks/compare_calibration.py --experiments 100
"""

import argparse
import contextlib
import functools
import io
import json
import tempfile
from pathlib import Path

import numpy as np

from scrnet.cli import main
from scrnet.config import config_to_dict, load_config
from scrnet.evaluation.counts import PerImageCounts
from scrnet.evaluation.metrics import miou_from
from scrnet.experiments.calibration import SCENARIOS, simulate, true_difference
from scrnet.experiments.compare import RunStats, interval_between
from scrnet.experiments.intervals import difference_interval, image_weights, verdict


@functools.cache
def run_config(k: int, seed: int, variant: bool) -> dict:
    return config_to_dict(load_config(None, ["model.name=scrnet_effl0", f"model.num_classes={k}", f"train.seed={seed}",
                                             f"model.srm.mode={'neighbor' if variant else 'bilinear'}"]))


def write_eval(path: Path, cms: np.ndarray, seed: int, variant: bool) -> Path:
    """One run's eval JSON + per-image counts, with the fields ``scrnet eval --json`` writes that compare reads."""
    k = cms.shape[-1]
    names = [f"class{c}" for c in range(k)]
    inter = np.stack([np.diagonal(c) for c in cms])
    union = cms.sum(1) + cms.sum(2) - inter
    PerImageCounts([f"img{i:03d}.png" for i in range(len(cms))], cms, inter, union).save(path.with_suffix(".npz"))
    total = cms.sum(0)
    ious = np.diagonal(total) / (total.sum(0) + total.sum(1) - np.diagonal(total))
    record = {"miou": float(miou_from(total)), "mbiou": float(ious.mean()), "iou": dict(zip(names, map(float, ious))),
              "num_images": len(cms), "dataset": "folder", "split": "val", "class_names": names,
              "per_image_counts": path.with_suffix(".npz").name,
              "config": run_config(k, seed, variant)}
    path.write_text(json.dumps(record))
    return path


def through_cli(scenario, seeds: int, delta: float, rng, work: Path, samples: int) -> dict:
    base, variant = simulate(scenario, seeds, delta, rng)
    paths = [write_eval(work / f"{name}_seed{s}.json", cms[s], s, name == "variant")
             for name, cms in (("base", base), ("variant", variant)) for s in range(seeds)]
    out = work / "compare.json"
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["compare", *map(str, paths), "--json", str(out), "--bootstrap-samples", str(samples),
                     "--bootstrap-seed", str(int(rng.integers(1 << 31)))])
    if code:
        raise SystemExit(f"scrnet compare exited with {code}")
    (c,) = [c for c in json.loads(out.read_text())["comparisons"] if c["metric"] == "miou"]
    return c


def calibration(experiments: int, samples: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"calibration ({experiments} experiments per row, 40 images, {samples} image draws); no difference: "
          f"through `scrnet compare` on eval JSON + npz files; known difference (1 point of accuracy): in-process")
    print(f"{'scenario':<22}{'seeds':>6}{'better/worse, no difference':>30}{'coverage, no difference':>26}"
          f"{'coverage, known difference':>29}")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for scenario in SCENARIOS:
            for seeds in (3, 5):
                null = [through_cli(scenario, seeds, 0.0, rng, work, samples) for _ in range(experiments)]
                decided = np.mean([c["verdict"] in ("better", "worse") for c in null])
                held = np.mean([c["low"] <= 0 <= c["high"] for c in null])
                truth = true_difference(scenario, 0.01)
                known = []
                for _ in range(experiments):
                    base, variant = simulate(scenario, seeds, 0.01, rng)
                    iv = interval_between([RunStats(c) for c in variant], [RunStats(c) for c in base], "miou",
                                          image_weights(scenario.images, samples, rng), paired=True)
                    known.append(iv.low <= truth <= iv.high)
                print(f"{scenario.name:<22}{seeds:>6}{decided:>30.1%}{held:>26.1%}{np.mean(known):>29.1%}",
                      flush=True)


def power(reps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    effects = (0.5, 1.0, 1.5, 2.0)
    print(f"\npower: share of {reps} experiments called 'better' (paired t, 95%), by true difference in seed-sd "
          f"of the per-seed differences")
    print(f"{'seeds':>6}" + "".join(f"{f'{e:g} sd':>10}" for e in effects))
    for seeds in (5, 8, 10, 15, 20):
        shares = []
        for e in effects:
            hits = 0
            for _ in range(reps):
                d = rng.normal(e, 1.0, seeds)
                still = np.zeros((seeds, 2))
                iv = difference_interval(d, np.zeros(seeds), still + d[:, None], still, paired=True, images=2)
                hits += verdict(iv)[0] == "better"
            shares.append(hits / reps)
        print(f"{seeds:>6}" + "".join(f"{s:>10.0%}" for s in shares))


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--experiments", type=int, default=100, help="simulated experiments per row (default 100)")
    p.add_argument("--samples", type=int, default=1000, help="image bootstrap draws per compare (default 1000)")
    p.add_argument("--power-reps", type=int, default=4000, help="experiments per power cell (default 4000)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args()


if __name__ == "__main__":
    args = parse_args()
    calibration(args.experiments, args.samples, args.seed)
    power(args.power_reps, args.seed)
