"""The metrics of one evaluation, updated image by image: the confusion matrix, BIoU* and (optionally) the
published boundary metrics, accumulated on the device, with each image's own counts kept when asked.

``evaluate`` (``scrnet eval``, validation during training, the demo) drives one :class:`MetricSet` per split; the
HTML report and the per-image counts file read what it kept. Nothing here reads back from the device per image:
per-image counts stay there and are read back ``READBACK_IMAGES`` images at a time.
"""

from typing import NamedTuple

import numpy as np
import torch

from .boundary import BIoUStar
from .metrics import ConfusionMatrix, mean_ratio
from .published_boundary import PublishedBoundaryMetrics

READBACK_IMAGES = 64  # per-image counts kept on the device before one read-back (keep_per_image)


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


def summary(confusion: ConfusionMatrix, boundary: BIoUStar, published: PublishedBoundaryMetrics | None,
            class_names: list[str]) -> dict:
    """The metrics JSON: ``{"miou", "aacc", "iou": {class: IoU|None}, "mbiou", "biou": {class: BIoU|None}}`` and,
    with the published boundary metrics, ``"boundary_iou"``, ``"boundary_f"`` and ``"distance_bands"``."""
    out = confusion.summary(class_names)
    out["mbiou"] = boundary.mean()
    out["biou"] = dict(zip(class_names, boundary.per_class()))
    if published is not None:
        out.update(published.to_json(class_names))
    return out


class MetricSet:
    """Every metric of one split. ``update`` adds an image, ``finish`` (once, after the last image) reads back the
    remaining per-image counts, sums over processes and checks the labels; ``summary`` is the metrics JSON."""

    def __init__(self, num_classes: int, eval_cfg, device: torch.device, boundary_metrics: bool,
                 keep_per_image: bool = False):
        k = self.num_classes = num_classes
        self.confusion = ConfusionMatrix(k, device=device)
        self.boundary = BIoUStar(k, eval_cfg.boundary_width, device=device)
        b = eval_cfg.boundary
        self.published = (PublishedBoundaryMetrics(k, b.dilation_ratio, b.f_tolerances, b.distance_bands,
                                                   device=device, f_mode=b.f_mode) if boundary_metrics else None)
        self.keep_per_image = keep_per_image
        self.per_image: list[ImageCounts] = []
        self._pending: list[torch.Tensor] = []

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add one image: ``pred`` and ``target`` ``H x W`` on the metrics' device."""
        before = self._snapshot() if self.keep_per_image else None
        self.confusion.update(pred, target)
        self.boundary.update(pred, target)
        if self.published is not None:
            self.published.update(pred, target)
        if before is not None:  # differences stay on the device, read back READBACK_IMAGES at a time
            self._pending.append(self._snapshot() - before)
            if len(self._pending) == READBACK_IMAGES:
                self._read_back()

    def finish(self) -> None:
        self._read_back()
        self.confusion.all_reduce()
        self.boundary.all_reduce()
        if self.published is not None:
            self.published.all_reduce()
        self.confusion.check()

    def summary(self, class_names: list[str]) -> dict:
        return summary(self.confusion, self.boundary, self.published, class_names)

    def _snapshot(self) -> torch.Tensor:
        """The counts a per-image record keeps, as one flat tensor on the device: true positives, ground-truth and
        predicted pixels per class, BIoU* and (with the published metrics) Boundary IoU intersections and unions."""
        m = self.confusion.matrix
        parts = [m.diagonal(), m.sum(1), m.sum(0), self.boundary.counts.reshape(-1)]
        if self.published is not None:
            parts.append(self.published.biou_counts.reshape(-1))
        return torch.cat(parts)

    def _read_back(self) -> None:
        """Read the pending per-image differences of :meth:`_snapshot` back in one transfer."""
        if not self._pending:
            return
        rows = torch.stack(self._pending).cpu().numpy()
        self._pending.clear()
        k, with_boundary = self.num_classes, self.published is not None
        for row in rows:
            tp, gt, pred, inter, union, rest = np.split(row[:5 * k], 5) + [row[5 * k:]]
            self.per_image.append(ImageCounts(tp, gt, pred, inter, union,
                                              rest.reshape(2, k).copy() if with_boundary else None))
