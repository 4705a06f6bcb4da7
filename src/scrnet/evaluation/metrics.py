"""Segmentation metrics from one confusion matrix accumulated over a whole split.

IoU = TP / (TP + FP + FN) per class, pixels labelled ``ignore_index`` excluded; a class whose denominator is empty
(absent from the ground truth and never predicted) is skipped (``None``); a class predicted but absent from the
ground truth counts 0. mIoU is the mean over the classes that are not skipped: the Cityscapes evaluator's definition.
"""

import numpy as np
import torch

from ..data.io import DataError


def iou_of(matrix) -> list[float | None]:
    """Per-class IoU = TP / (TP + FP + FN) of a K x K count matrix (rows ground truth, columns prediction; a tensor
    or an array); None for a class absent from both."""
    m = torch.as_tensor(matrix).double()
    tp = m.diag()
    denom = m.sum(0) + m.sum(1) - tp
    return [None if d == 0 else float(t / d) for t, d in zip(tp.tolist(), denom.tolist())]


# The version of the metric definitions an eval JSON was scored with (``metrics_version`` in it): raised whenever what
# a metric measures changes (its counting, its band or contour, how it pools), so that ``scrnet compare`` never pools
# runs scored by different definitions. 1: mIoU over counts pooled on the split; BIoU* the fixed 3-px inner band per
# class; Boundary IoU after Cheng et al. (dilation ratio, all-class band); boundary F pooled over the split, inner
# 8-neighbour contour (the published per-image F is a separate mode, named by ``boundary_f_mode`` in the JSON);
# distance-band mIoU. Eval JSONs written before the field existed read as unrecorded.
METRICS_VERSION = 1


def miou_from(cm: np.ndarray) -> np.ndarray:
    """Mean IoU over the classes present (union > 0) of confusion matrices ``... x K x K``."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1)
    union = cm.sum(-1) + cm.sum(-2) - tp
    return mean_ratio(tp, union)


def mean_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Mean over the last axis of ``num / den`` where ``den > 0`` (NaN where no entry has ``den > 0``): a mean IoU
    over the classes present."""
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
    valid = den > 0
    total = np.where(valid, ratio, 0.0).sum(-1)
    count = valid.sum(-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def miou_of(matrix) -> float:
    """Mean IoU over the classes present (union > 0) of one ``K x K`` count matrix (a tensor or an array); NaN when
    no class is present. The one mean-IoU of the library (:func:`miou_from` on one matrix)."""
    return float(miou_from(torch.as_tensor(matrix).double().cpu().numpy()))


def bin_counts(index: torch.Tensor, size: int) -> torch.Tensor:
    """How often each of ``0..size-1`` occurs in the integer tensor ``index`` (int64, on its device; every value must
    lie in that range). ``torch.bincount``'s counts without its host synchronisation: on CUDA bincount reads the
    input's minimum and maximum back to size its output, this is one ``index_add_``."""
    index = index.reshape(-1).long()
    counts = torch.zeros(size, dtype=torch.int64, device=index.device)
    ones = torch.ones((), dtype=torch.int64, device=index.device).expand(index.numel())  # no N-element buffer
    return counts.index_add_(0, index, ones)


class ConfusionMatrix:
    """``K x K`` counts (rows: ground truth, columns: prediction) accumulated on the tensors' device."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)
        # labels outside 0..K-1 (other than ignore) seen so far, as counts per value 0..255 (others clamped): kept
        # on the device and checked when the matrix is read, so update() never waits for the device
        self._bad = torch.zeros(256, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predictions and labels of the same shape (any batch layout). Labels outside 0..K-1 other than the
        ignore index make every later read of the matrix raise, since they would silently bias the metric. No host
        synchronisation: one ``index_add_`` on the matrix's device."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(target.shape)}")
        k = self.num_classes
        dev = self.matrix.device
        t, p = target.reshape(-1).to(dev).long(), pred.reshape(-1).to(dev).long()
        labelled = t != self.ignore_index
        good = labelled & (t >= 0) & (t < k)
        bad = labelled & ~good
        self._bad.index_add_(0, t.clamp(0, 255), bad.long())
        cell = torch.where(good, t * k + p.clamp(0, k - 1), k * k)  # k*k: a bin for pixels that do not count
        self.matrix += bin_counts(cell, k * k + 1)[:-1].view(k, k)

    def check(self) -> None:
        """Raise if any label outside 0..K-1 (other than the ignore index) was seen."""
        if int(self._bad.sum()):
            values = self._bad.nonzero().flatten().tolist()
            raise DataError(f"labels outside 0..{self.num_classes - 1} (and {self.ignore_index} ignored): "
                             f"{values[:10]}")

    def all_reduce(self) -> None:
        """Sum the matrix over processes (no-op when not distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)

    def iou(self) -> list[float | None]:
        self.check()
        return iou_of(self.matrix)

    def miou(self) -> float:
        self.check()
        return miou_of(self.matrix)

    def pixel_accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(self.matrix.diag().sum()) / total if total else float("nan")

    def summary(self, class_names: list[str]) -> dict:
        """The JSON of ``scrnet eval``: ``{"miou", "aacc", "iou": {class: float | None}}`` (fractions in 0..1)."""
        return {"miou": self.miou(), "aacc": self.pixel_accuracy(),
                "iou": dict(zip(class_names, self.iou()))}
