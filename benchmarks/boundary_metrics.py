"""Cost of the published boundary metrics (Boundary IoU, boundary F at 3/5/9/12 px, distance bands) per 1024x2048
image, as a ratio to the metrics scrnet eval always computes (confusion matrix + our fixed-band boundary IoU),
measured in the same run, on the CPU by default.

    python benchmarks/boundary_metrics.py [--rounds 3] [--size H W] [--device cuda]

Three images: a synthetic street scene (9 classes, prediction from another scene); the worst case of the goal,
random 32-pixel blocks of 19 classes in both ground truth and prediction (every class everywhere); and a stress
case, independent per-pixel noise of 19 classes (every pixel a contour pixel: the F-score's search switches to
comparing shifted label maps).
"""

import argparse
import time

import numpy as np
import torch

from scrnet.data.synthetic import render_scene
from scrnet.evaluation.boundary import BIoUStar
from scrnet.evaluation.metrics import ConfusionMatrix
from scrnet.evaluation.published_boundary import PublishedBoundaryMetrics
from scrnet.runtime import synchronize


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
    parser.add_argument("--size", type=int, nargs=2, default=(1024, 2048), metavar=("H", "W"))
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    h, w = args.size
    device = torch.device(args.device)
    rng = np.random.default_rng(0)
    blocks = [np.kron(rng.integers(0, 19, (h // 32 + 1, w // 32 + 1)), np.ones((32, 32), np.int64))[:h, :w]
              for _ in range(2)]
    cases = {"street scene (9 classes)": (render_scene(h, w, np.random.default_rng(1))[1].astype(np.int64),
                                          render_scene(h, w, np.random.default_rng(0))[1].astype(np.int64)),
             "random blocks (19 classes)": (blocks[1], blocks[0]),
             "per-pixel noise (19)": (rng.integers(0, 19, (h, w)), rng.integers(0, 19, (h, w)))}
    print(f"per {h}x{w} image, {device}, {torch.get_num_threads()} threads, best of {args.rounds}")
    for name, (pred, target) in cases.items():
        p, t = torch.from_numpy(pred).to(device), torch.from_numpy(target).to(device)

        def always():
            ConfusionMatrix(19, device=device).update(p, t)
            BIoUStar(19, 3, device=device).update(p, t)
            synchronize(device)

        def published():
            PublishedBoundaryMetrics(19, 0.005, device=device).update(p, t)
            synchronize(device)

        base, cost = best_of(always, args.rounds), best_of(published, args.rounds)
        print(f"{name:<28} confusion + BIoU* {base:6.3f} s   published metrics {cost:6.3f} s   "
              f"ratio {cost / base:5.2f}x")


if __name__ == "__main__":
    main()
