"""Images per second of `scrnet eval`'s loop on CPU, whole-image and sliding-window, on synthetic 1024x2048 inputs.

    python benchmarks/eval_speed.py [--model scrnet_r18] [--images 4]

Runs the same code as `scrnet eval` (evaluation.evaluate: PNG decode, normalisation, inference, confusion matrix
and boundary IoU) on a Cityscapes-layout tree of synthetic scenes and reports the share of time outside the
network (data loading and metrics). Goal: under 10%.
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
    args = parser.parse_args()
    model = create_model(args.model, num_classes=19).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cityscapes_tree(Path(tmp), args.images, split="val")
        dataset = SegmentationDataset(open_source("cityscapes", root, "val"), EvalTransform(EvalTransformConfig()))
        norm = Normalize(model.normalization.mean, model.normalization.std)
        print(f"scrnet eval loop, {args.model}, {args.images} synthetic 1024x2048 images, CPU float32, {conditions()}")
        print(f"{'mode':<8}{'img/s':>8}{'data':>8}{'network':>9}{'metric':>8}{'outside network':>17}")
        for mode in ("whole", "slide"):
            cfg = EvalConfig(mode=mode, crop_size=[1024, 1024], stride=[768, 768])
            evaluate(model, dataset, torch.device("cpu"), cfg, norm, limit=1)  # warm-up
            start = time.perf_counter()
            result = evaluate(model, dataset, torch.device("cpu"), cfg, norm, timing=True)
            total = time.perf_counter() - start
            s = result.seconds
            outside = (s["data"] + s["metric"]) / total
            print(f"{mode:<8}{result.num_images / total:>8.3f}{s['data'] / total:>8.1%}{s['network'] / total:>9.1%}"
                  f"{s['metric'] / total:>8.1%}{outside:>17.1%}")


if __name__ == "__main__":
    main()
