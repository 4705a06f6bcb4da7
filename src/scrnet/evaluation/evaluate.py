"""Scoring a model on a split: one confusion matrix (and BIoU* counts) over the whole split, summed over
processes, predictions scored at the label's original resolution."""

import dataclasses
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch
from tqdm import tqdm

from ..data.dataset import SegmentationDataset
from ..data.io import batches, loader_worker_init
from ..data.transforms import Normalize
from ..runtime import synchronize
from .boundary import BIoUStar
from .inference import infer_as_configured
from .metrics import ConfusionMatrix, mean_ratio
from .published_boundary import PublishedBoundaryMetrics


class ImageCounts(NamedTuple):
    """One image's counts per class: true positives, ground-truth and predicted pixels (what its IoU needs), BIoU*
    intersections and unions, and with the published boundary metrics the Boundary IoU intersections and unions
    (``2 x K``; None without them)."""
    tp: np.ndarray
    gt: np.ndarray
    pred: np.ndarray
    inter: np.ndarray
    union: np.ndarray
    boundary: np.ndarray | None = None

    def miou(self) -> float:
        """The image's own mIoU (over the classes in its ground truth or prediction; NaN when none)."""
        return float(mean_ratio(self.tp, self.gt + self.pred - self.tp))


READBACK_IMAGES = 64  # per-image counts kept on the device before one read-back (keep_per_image)


def _snapshot(cm: ConfusionMatrix, biou: BIoUStar, published: PublishedBoundaryMetrics | None) -> torch.Tensor:
    """The counts a per-image record keeps, as one flat tensor on the device: true positives, ground-truth and
    predicted pixels per class, BIoU* and (with the published metrics) Boundary IoU intersections and unions."""
    m = cm.matrix
    parts = [m.diagonal(), m.sum(1), m.sum(0), biou.counts.reshape(-1)]
    if published is not None:
        parts.append(published.biou_counts.reshape(-1))
    return torch.cat(parts)


def _image_counts(pending: list[torch.Tensor], k: int, with_boundary: bool) -> list[ImageCounts]:
    """Read the per-image differences of :func:`_snapshot` back in one transfer (and empty ``pending``)."""
    if not pending:
        return []
    rows = torch.stack(pending).cpu().numpy()
    pending.clear()
    out = []
    for row in rows:
        tp, gt, pred, inter, union, rest = np.split(row[:5 * k], 5) + [row[5 * k:]]
        out.append(ImageCounts(tp, gt, pred, inter, union, rest.reshape(2, k).copy() if with_boundary else None))
    return out


@dataclass
class EvalResult:
    confusion: ConfusionMatrix
    boundary: BIoUStar
    num_images: int
    class_names: list[str]
    seconds: dict[str, float] = field(default_factory=dict)  # total; with timing=True also data/network/metric
    per_image: list[ImageCounts] = field(default_factory=list)  # with keep_per_image
    published: PublishedBoundaryMetrics | None = None  # eval.boundary.enabled

    def to_json(self) -> dict:
        """``{"miou", "aacc", "iou": {class: IoU|None}, "num_images", "mbiou", "biou": {class: BIoU|None}}`` and,
        with the published boundary metrics, ``"boundary_iou": {"dilation_ratio", "mean", "per_class"}``,
        ``"boundary_f": {"3": {"mean", "per_class"}, ...}``, ``"distance_bands": [{"from", "to", "miou"}, ...]``."""
        out = self.confusion.summary(self.class_names)
        out["num_images"] = self.num_images
        out["mbiou"] = self.boundary.mean()
        out["biou"] = dict(zip(self.class_names, self.boundary.per_class()))
        if self.published is not None:
            out.update(self.published.to_json(self.class_names))
        return out


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, device: torch.device, eval_cfg,
             normalize: Normalize, tta: bool | None = None, rank: int = 0, world_size: int = 1, autocast=None,
             progress: bool = False, channels_last: bool = False, limit: int | None = None,
             keep_per_image: bool = False, num_workers: int = 0, timing: bool = False,
             boundary_metrics: bool | None = None) -> EvalResult:
    """Inference (``eval_cfg.mode``, TTA when ``tta`` or ``eval_cfg.tta``) over this rank's share of ``dataset``
    (indices ``rank::world_size``); the returned counts are summed over ranks. ``keep_per_image`` also keeps each
    image's confusion matrix and boundary counts (this rank's images), e.g. for bootstrap intervals.

    Images are decoded by ``num_workers`` loader processes (0: in this process) and cross to the device as uint8
    (pinned, non-blocking on CUDA); ``normalize`` casts and normalises them there. Metrics accumulate on the device,
    so the loop never waits for the GPU, unless ``timing`` asks for the data / network / metric split (one
    synchronisation per image and stage, for benchmarks); ``keep_per_image`` keeps each image's counts on the device
    and reads them back ``READBACK_IMAGES`` images at a time.
    ``boundary_metrics`` (default ``eval_cfg.boundary.enabled``) adds the published boundary metrics, computed on
    the device too (on CUDA without reading anything back; the CPU's faster F-score search sizes its work from the
    image).
    """
    if tta is not None and tta != eval_cfg.tta:  # the caller's choice, on a copy of its config
        eval_cfg = dataclasses.replace(eval_cfg, tta=tta)
    was_training = model.training
    model.eval()
    k = len(dataset.class_names)
    cm = ConfusionMatrix(k, device=device)
    biou = BIoUStar(k, eval_cfg.boundary_width, device=device)
    b = eval_cfg.boundary
    boundary_metrics = b.enabled if boundary_metrics is None else boundary_metrics
    published = (PublishedBoundaryMetrics(k, b.dilation_ratio, b.f_tolerances, b.distance_bands, device=device,
                                          f_mode=b.f_mode) if boundary_metrics else None)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    indices = list(range(rank, len(dataset) if limit is None else min(limit, len(dataset)), world_size))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=1,
                                         num_workers=num_workers, pin_memory=device.type == "cuda",
                                         worker_init_fn=loader_worker_init)
    seconds = {"data": 0.0, "network": 0.0, "metric": 0.0}
    per_image: list = []
    pending: list[torch.Tensor] = []
    sync = (lambda: synchronize(device)) if timing else (lambda: None)
    start = t0 = time.perf_counter()
    for batch in tqdm(batches(loader), total=len(loader), desc="eval", disable=not progress, leave=False):
        image = normalize(batch["image"].to(device, non_blocking=True), memory_format)
        target = batch["mask"][0].to(device, non_blocking=True)
        sync()
        t1 = time.perf_counter()
        with autocast or nullcontext():
            scores = infer_as_configured(model, image, tuple(target.shape), eval_cfg, k)
        pred = scores.argmax(1)[0]
        sync()
        t2 = time.perf_counter()
        if keep_per_image:
            before = _snapshot(cm, biou, published)
        cm.update(pred, target)
        biou.update(pred, target)
        if published is not None:
            published.update(pred, target)
        if keep_per_image:  # differences stay on the device, read back READBACK_IMAGES at a time
            pending.append(_snapshot(cm, biou, published) - before)
            if len(pending) == READBACK_IMAGES:
                per_image += _image_counts(pending, k, published is not None)
        sync()
        t3 = time.perf_counter()
        seconds["data"] += t1 - t0
        seconds["network"] += t2 - t1
        seconds["metric"] += t3 - t2
        t0 = time.perf_counter()
    per_image += _image_counts(pending, k, published is not None)
    cm.all_reduce()
    biou.all_reduce()
    if published is not None:
        published.all_reduce()
    num = torch.tensor([len(indices)], device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(num)
    cm.check()
    synchronize(device)
    seconds["total"] = time.perf_counter() - start
    if not timing:  # without per-stage synchronisation the split would be meaningless: only the total is kept
        seconds = {"total": seconds["total"]}
    model.train(was_training)
    return EvalResult(cm, biou, int(num.item()), list(dataset.class_names), seconds, per_image, published)
