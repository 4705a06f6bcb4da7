"""``scrnet demo``: the whole library end to end with no data set and no network.

Generates the synthetic street scenes, trains ``scrnet_effl0`` (offline ImageNet weights) and, with the same
backbone, data and budget, the bilinear baseline (plain FPN top-down path with PPM context), evaluates both
(mIoU, BIoU*, per-class table), and writes prediction overlays, the SRM offset field, a training-curve
image, the metrics JSON and the checkpoint. Both models are scored at their final iteration (not ``best.pth``, which
was picked on the very images scored). With one training run per model the comparison gets an interval over
validation images only (compare's leave-one-image-out jackknife): seed-to-seed variation is not in it, so the demo
prints no verdict; ``scrnet study`` with 5 or more seeds gives one.
"""

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ..checkpoint_io import checkpoint_path
from ..config import load_config
from ..data.build import open_source
from ..data.dataset import SegmentationDataset
from ..data.io import read_image
from ..data.synthetic import generate_synthetic
from ..data.transforms import EvalTransform
from ..drawing import flow_to_color
from ..engine.trainer import train
from ..engine.training_log import LOG_FILE, read_log
from ..evaluation.counts import PerImageCounts
from ..evaluation.evaluate import EvalResult, evaluate
from ..evaluation.run import format_table
from ..inference.predict import Predictor
from ..loading import load_checkpoint
from ..outputs import OutputFolder
from .compare import RunStats, interval_between


@dataclass(frozen=True)
class DemoPlan:
    num_train: int
    num_val: int
    size: tuple[int, int]
    crop: tuple[int, int]
    iters: int
    val_interval: int
    batch: int


FULL = DemoPlan(num_train=200, num_val=50, size=(256, 512), crop=(256, 256), iters=200, val_interval=50, batch=4)
QUICK = DemoPlan(num_train=16, num_val=6, size=(64, 128), crop=(64, 64), iters=12, val_interval=6, batch=2)
MODELS = {  # name in the demo -> overrides on scrnet_effl0
    "scrnet": [],
    "fpn": ["model.srm.mode=bilinear", "model.context.type=ppm"],
}


def overrides(plan: DemoPlan, data: Path, seed: int) -> list[str]:
    h, w = plan.size
    return [
        "model.name=scrnet_effl0", "model.num_classes=9", "model.backbone_weights=imagenet",
        "data.type=folder", f"data.root={data}", f"data.train.scale=[{w},{h}]", "data.train.ratio_range=[0.75,1.5]",
        f"data.train.crop_size=[{plan.crop[0]},{plan.crop[1]}]", f"train.max_iters={plan.iters}",
        f"train.batch_size={plan.batch}", "train.num_workers=0", f"train.val_interval={plan.val_interval}",
        f"train.checkpoint_interval={plan.iters}", f"train.log_interval={max(plan.iters // 20, 1)}",
        "train.optim.optimizer=adamw", "train.optim.lr=0.001", "train.optim.weight_decay=0.01",
        "train.optim.head_lr_mult=10.0", f"train.optim.warmup_iters={max(plan.iters // 10, 1)}",
        f"train.seed={seed}", "train.tensorboard=false",
    ]


def image_only_interval(a: EvalResult, b: EvalResult) -> dict:
    """The 95% interval of (a - b) in mIoU and BIoU* over validation images only (one run each: compare's
    leave-one-image-out jackknife, paired by image; seed-to-seed variation is not in it)."""
    def stats(r: EvalResult) -> RunStats:  # both results hold the same images in the same order
        return RunStats.of_counts(PerImageCounts.from_result(r.per_image, [str(i) for i in range(len(r.per_image))]))

    out = {}
    for metric in ("miou", "mbiou"):
        iv = interval_between([stats(a)], [stats(b)], metric, paired=True)
        out[metric] = [iv.low, iv.high]
    return out


def curve_image(logs: dict[str, Path], path: Path, width: int = 900, height: int = 360) -> None:
    """Training loss (left) and validation mIoU (right) over iterations for each run, drawn with OpenCV."""
    colours = [(40, 40, 220), (200, 120, 20)]
    panel = np.full((height, width, 3), 255, np.uint8)
    series = {}
    for name, log in logs.items():
        records = read_log(log)
        series[name] = ([(r["iter"], r["loss"]) for r in records if r.get("loss") is not None],
                        [(r["iter"], r["val_miou"]) for r in records if "val_miou" in r])
    half = width // 2
    for k, (title, idx) in enumerate((("training loss", 0), ("val mIoU", 1))):
        x0, x1, y0, y1 = k * half + 50, (k + 1) * half - 15, 30, height - 40
        points = [p for s in series.values() for p in s[idx]]
        if not points:
            continue
        max_x = max(p[0] for p in points)
        lo, hi = (0.0, 1.0) if idx == 1 else (0.0, max(p[1] for p in points) * 1.05)
        cv2.rectangle(panel, (x0, y0), (x1, y1), (0, 0, 0), 1)
        cv2.putText(panel, title, (x0, y0 - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(panel, f"{hi:.2f}", (x0 - 45, y0 + 10), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(panel, f"{lo:.2f}", (x0 - 45, y1), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        cv2.putText(panel, f"iteration {max_x}", (x1 - 100, y1 + 20), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
        for c, (name, s) in enumerate(series.items()):
            pts = np.array([(x0 + (x1 - x0) * it / max_x, y1 - (y1 - y0) * (v - lo) / ((hi - lo) or 1))
                            for it, v in s[idx]], np.int32)
            if len(pts):
                cv2.polylines(panel, [pts.reshape(-1, 1, 2)], False, colours[c % 2], 2, cv2.LINE_AA)
            cv2.putText(panel, name, (x1 - 80, y0 + 20 + 18 * c), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colours[c % 2], 1,
                        cv2.LINE_AA)
    cv2.imwrite(str(path), panel)


def run_demo(out: str | Path, quick: bool = False, seed: int = 0, progress: bool | None = None) -> dict:
    out = Path(out)
    plan = QUICK if quick else FULL
    start = time.perf_counter()
    checkpoint = out / "scrnet_effl0_synthetic.pth"
    # everything the demo writes; an entry that exists is replaced only if an earlier demo wrote it, unchanged
    entries = [out / "data", *(out / "runs" / name for name in MODELS), checkpoint, out / "predictions",
               out / "srm_offsets.png", out / "training_curve.png", out / "metrics.json"]
    folder = OutputFolder(out, "demo")
    folder.check(entries)
    for entry in entries:
        folder.claim(entry)
        if entry.is_dir():  # a folder of a previous demo, every file as that demo left it
            shutil.rmtree(entry)
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _run(out, plan, seed, progress, start, checkpoint)
    finally:
        folder.save()


def _run(out: Path, plan: DemoPlan, seed: int, progress: bool | None, start: float, checkpoint: Path) -> dict:
    data = generate_synthetic(out / "data", plan.num_train, plan.num_val, plan.size, seed=seed)
    print(f"synthetic data: {plan.num_train} train + {plan.num_val} val scenes of {plan.size[0]}x{plan.size[1]} "
          f"in {data}")
    results, logs = {}, {}
    for name, extra in MODELS.items():
        print(f"training {name} (scrnet_effl0 backbone{', ' + ', '.join(extra) if extra else ''}): "
              f"{plan.iters} iterations")
        cfg = load_config(None, overrides(plan, data, seed) + extra)
        run_dir = out / "runs" / name
        train(cfg, run_dir, progress=progress)
        loaded = load_checkpoint(checkpoint_path(run_dir, plan.iters))  # the final iteration, not best.pth
        print(f"scoring {name} at iteration {plan.iters} (its final checkpoint)")
        source = open_source("folder", data, "val")
        dataset = SegmentationDataset(source, EvalTransform(loaded.config.data.eval))
        results[name] = evaluate(loaded.model, dataset, torch.device("cpu"), loaded.config.eval, loaded.normalization,
                                 keep_per_image=True)
        logs[name] = run_dir / LOG_FILE
    shutil.copy(checkpoint_path(out / "runs" / "scrnet", plan.iters), checkpoint)
    # images: overlays, the SRM offset field, the training curves
    loaded = load_checkpoint(checkpoint)
    predictor = Predictor(loaded, torch.device("cpu"))
    pred_dir = out / "predictions"
    pred_dir.mkdir(exist_ok=True)
    val_images = sorted((data / "val" / "images").iterdir())[:4]
    for path in val_images:
        rgb = read_image(path)
        cv2.imwrite(str(pred_dir / path.name), cv2.cvtColor(predictor.render(rgb, predictor.predict(rgb), "overlay"),
                                                            cv2.COLOR_RGB2BGR))
    rgb = read_image(val_images[0])
    overlay = predictor.render(rgb, predictor.predict(rgb), "overlay")
    cv2.imwrite(str(out / "srm_offsets.png"),
                cv2.cvtColor(np.concatenate([overlay, flow_to_color(predictor.offsets(rgb))]), cv2.COLOR_RGB2BGR))
    curve_image(logs, out / "training_curve.png")
    summary = {name: r.to_json() for name, r in results.items()}
    interval = image_only_interval(results["scrnet"], results["fpn"])
    report = {"scrnet": summary["scrnet"], "fpn": summary["fpn"], "scored_iteration": plan.iters,
              "difference_image_only_95ci": interval,
              "plan": plan.__dict__, "seconds": time.perf_counter() - start}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    print_report(out, report, checkpoint)
    return report


def print_report(out: Path, report: dict, checkpoint: Path) -> None:
    s, f, ci = report["scrnet"], report["fpn"], report["difference_image_only_95ci"]
    print(f"\nscrnet_effl0 (SRM + CRM) on the synthetic validation images, iteration {report['scored_iteration']}:")
    print(format_table(s))
    print(f"\n{'':<28}{'mIoU':>8}{'BIoU*':>14}")
    print(f"{'SCRNet (SRM + CRM)':<28}{100 * s['miou']:>8.2f}{100 * s['mbiou']:>14.2f}")
    print(f"{'FPN baseline (bilinear+PPM)':<28}{100 * f['miou']:>8.2f}{100 * f['mbiou']:>14.2f}")
    for key, label in (("miou", "mIoU"), ("mbiou", "BIoU*")):
        lo, hi = (100 * v for v in ci[key])
        print(f"{label} difference {100 * (s[key] - f[key]):+.2f} points, image-only 95% interval "
              f"[{lo:+.2f}, {hi:+.2f}]")
    print("no verdict: one training run per model, so seed-to-seed variation is not in these intervals (it is often "
          "larger);\nfor one, train 5 or more seeds of each: scrnet study ... --seeds 0 1 2 3 4, then scrnet compare")
    print(f"\nfinished in {report['seconds']:.0f} s; everything is in {out}:")
    print(f"  {checkpoint}   the trained SCRNet checkpoint")
    print(f"  {out / 'metrics.json'}   both models' metrics and the interval")
    print(f"  {out / 'predictions'}/   prediction overlays of validation images")
    print(f"  {out / 'srm_offsets.png'}   a prediction and SRM's offset field (hue: direction, brightness: length)")
    print(f"  {out / 'training_curve.png'}   loss and validation mIoU over iterations")
    print("next:")
    print(f"  scrnet predict {checkpoint} YOUR_IMAGES --out predictions")
    print("  scrnet data check --data.type cityscapes --data.root /data/cityscapes --split val")
    print("  scrnet train configs/cityscapes/scrnet_r18.yaml data.root=/data/cityscapes")
