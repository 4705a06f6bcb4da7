"""Segmentation metrics from one confusion matrix accumulated over a whole split.

IoU = TP / (TP + FP + FN) per class, pixels labelled ``ignore_index`` excluded; a class whose denominator is empty
(absent from the ground truth and never predicted) is skipped (``None``); a class predicted but absent from the
ground truth counts 0. mIoU is the mean over the classes that are not skipped: the Cityscapes evaluator's definition.
"""

import torch


class ConfusionMatrix:
    """``K x K`` counts (rows: ground truth, columns: prediction) accumulated on the tensors' device."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: str | torch.device = "cpu"):
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """Add predictions and labels of the same shape (any batch layout); labels outside 0..K-1 other than the
        ignore index raise, since they would silently bias the metric."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(target.shape)}")
        keep = target != self.ignore_index
        t, p = target[keep].long(), pred[keep].long()
        if t.numel() and (t.min() < 0 or t.max() >= self.num_classes):
            raise ValueError(f"labels outside 0..{self.num_classes - 1} (and {self.ignore_index} ignored): "
                             f"{sorted(set(t[(t < 0) | (t >= self.num_classes)].unique().tolist()))[:10]}")
        k = self.num_classes
        self.matrix += torch.bincount(t * k + p, minlength=k * k).view(k, k).to(self.matrix.device)

    def all_reduce(self) -> None:
        """Sum the matrix over processes (no-op when not distributed)."""
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(self.matrix)

    def iou(self) -> list[float | None]:
        m = self.matrix.double()
        tp = m.diag()
        denom = m.sum(0) + m.sum(1) - tp
        return [None if d == 0 else float(t / d) for t, d in zip(tp.tolist(), denom.tolist())]

    def miou(self) -> float:
        values = [v for v in self.iou() if v is not None]
        return sum(values) / len(values) if values else float("nan")

    def pixel_accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(self.matrix.diag().sum()) / total if total else float("nan")

    def summary(self, class_names: list[str]) -> dict:
        """The JSON of ``scrnet eval``: ``{"miou", "aacc", "iou": {class: float | None}}`` (fractions in 0..1)."""
        return {"miou": self.miou(), "aacc": self.pixel_accuracy(),
                "iou": dict(zip(class_names, self.iou()))}
