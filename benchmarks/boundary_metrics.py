"""Cost of the published boundary metrics per 1024x2048 image, as a ratio to the metrics scrnet eval always
computes (confusion matrix + our fixed-band boundary IoU), measured in the same run on the CPU.

    python benchmarks/boundary_metrics.py [--rounds 3]

Two images: a synthetic street scene (9 classes, prediction from another scene) and the worst case, random
32-pixel blocks of 19 classes in both ground truth and prediction (every class everywhere, so no class crops).
"""

import argparse
import time

import numpy as np
import torch

from scrnet.data.synthetic import render_scene
from scrnet.evaluation.boundary import BoundaryIoU
from scrnet.evaluation.metrics import ConfusionMatrix
from scrnet.evaluation.published_boundary import PublishedBoundaryMetrics


def best_of(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    blocks = [np.kron(rng.integers(0, 19, (32, 64)), np.ones((32, 32), np.int64)) for _ in range(2)]
    cases = {"street scene (9 classes)": (render_scene(1024, 2048, np.random.default_rng(1))[1].astype(np.int64),
                                          render_scene(1024, 2048, np.random.default_rng(0))[1].astype(np.int64)),
             "random blocks (19 classes)": (blocks[1], blocks[0])}
    print(f"per 1024x2048 image, CPU, {torch.get_num_threads()} threads, best of {args.rounds}")
    for name, (pred, target) in cases.items():
        p, t = torch.from_numpy(pred), torch.from_numpy(target)

        def always():
            ConfusionMatrix(19).update(p, t)
            BoundaryIoU(19, 3).update(p, t)

        base = best_of(always, args.rounds)
        published = best_of(lambda: PublishedBoundaryMetrics(19, 0.005).update(pred, target), args.rounds)
        print(f"{name:<28} confusion + BIoU* {base:6.3f} s   published metrics {published:6.3f} s   "
              f"ratio {published / base:5.2f}x")


if __name__ == "__main__":
    main()
