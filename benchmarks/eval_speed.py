"""Images per second of `scrnet eval`'s loop, whole-image and sliding-window, on synthetic 1024x2048 inputs, with and
without the published boundary metrics.

    python benchmarks/eval_speed.py [--model scrnet_r18] [--images 4] [--device cuda] [--modes whole slide]

Runs the same code as `scrnet eval` (evaluation.evaluate: PNG decode, normalisation, inference, confusion matrix
and BIoU*, then again with the published boundary metrics: Boundary IoU, boundary F, distance bands) on a
Cityscapes-layout tree of synthetic scenes; reports the share of time outside the network (data loading and
metrics; goal: under 10%) and each evaluation's time as a ratio to the same evaluation without the published
metrics (goal on a GPU: at most 1.2x over 500 images). On CUDA: float16 autocast, as `scrnet eval` runs there.
"""

import argparse
import tempfile
import time
from pathlib import Path

import torch
from common import write_cityscapes_tree

from scrnet.config import EvalConfig
from scrnet.data import EvalTransform, EvalTransformConfig, SegmentationDataset, open_source
from scrnet.data.transforms import Normalize
from scrnet.evaluation.evaluate import evaluate
from scrnet.models import create_model
from scrnet.profiling.benchmark import conditions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="scrnet_r18")
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--modes", nargs="+", default=["whole", "slide"], choices=["whole", "slide"])
    parser.add_argument("--size", nargs=2, type=int, default=[1024, 2048], metavar=("H", "W"))
    args = parser.parse_args()
    device = torch.device(args.device)
    model = create_model(args.model, num_classes=19).eval().to(device)
    autocast = torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda" else None
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cityscapes_tree(Path(tmp), args.images, split="val", size=tuple(args.size))
        dataset = SegmentationDataset(open_source("cityscapes", root, "val"), EvalTransform(EvalTransformConfig()))
        norm = Normalize(model.normalization.mean, model.normalization.std)
        where = torch.cuda.get_device_name(device) + ", float16 autocast" if device.type == "cuda" else "CPU float32"
        print(f"scrnet eval loop, {args.model}, {args.images} synthetic {args.size[0]}x{args.size[1]} images, {where}, "
              f"{conditions()}")
        print(f"{'mode':<8}{'metrics':<11}{'img/s':>8}{'data':>8}{'network':>9}{'metric':>8}{'outside network':>17}"
              f"{'time ratio':>12}")
        for mode in args.modes:
            crop = min(1024, *args.size)
            cfg = EvalConfig(mode=mode, crop_size=[crop, crop], stride=[crop * 3 // 4, crop * 3 // 4])
            evaluate(model, dataset, device, cfg, norm, limit=1, autocast=autocast)  # warm-up
            base = None
            for published in (False, True):
                start = time.perf_counter()
                result = evaluate(model, dataset, device, cfg, norm, timing=True, autocast=autocast,
                                  boundary_metrics=published)
                total = time.perf_counter() - start
                base = base or total
                s = result.seconds
                outside = (s["data"] + s["metric"]) / total
                print(f"{mode:<8}{'all' if published else 'cm+BIoU*':<11}{result.num_images / total:>8.3f}"
                      f"{s['data'] / total:>8.1%}{s['network'] / total:>9.1%}{s['metric'] / total:>8.1%}"
                      f"{outside:>17.1%}{total / base:>11.2f}x")


if __name__ == "__main__":
    main()
