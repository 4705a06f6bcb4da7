"""BIoU*: our fixed-band boundary IoU, accumulated over a split like the confusion matrix. Not Cheng et al.'s
Boundary IoU (that one, with its band proportional to the image diagonal and the image edge as a contour, is
:mod:`scrnet.evaluation.published_boundary`).

For class c, ``G`` is the part of the ground-truth mask of c within ``width`` pixels (chessboard distance) of a
labelled pixel of another class, i.e. the mask minus its erosion by a (2 width + 1) square, and ``P`` the same for
the prediction; BIoU* = |G ∩ P| / |G ∪ P| with intersections and unions summed over all images. Pixels labelled
ignore are excluded from both bands and are neutral: an edge against them is not a contour, in the ground truth or
the prediction (what lies beyond it is unknown), nor is the image edge; a class with an empty union over the split
is skipped (None).

One implementation on every device: all classes at once, from the window maximum and minimum of the labels
(:func:`~scrnet.evaluation.published_boundary.other_label_within`: OpenCV on the CPU, pooling on other devices, with
no host synchronisation there). The per-class OpenCV erosion it replaced is its test oracle
(``tests/boundary_oracle.py``).
"""

import numpy as np
import torch

from .metrics import bin_counts
from .published_boundary import other_label_within


class BIoUStar:
    """BIoU* intersections and unions per class, accumulated on ``device`` (see the module)."""

    def __init__(self, num_classes: int, width: int = 3, ignore_index: int = 255,
                 device: str | torch.device = "cpu"):
        self.num_classes, self.width, self.ignore_index = num_classes, width, ignore_index
        self._counts = torch.zeros(2, num_classes, dtype=torch.int64, device=device)  # intersections, unions

    @property
    def counts(self) -> torch.Tensor:
        """``2 x K`` intersections and unions, the tensor on the metric's device (no copy, no synchronisation)."""
        return self._counts

    @property
    def inter(self) -> np.ndarray:
        return self._counts[0].cpu().numpy()

    @property
    def union(self) -> np.ndarray:
        return self._counts[1].cpu().numpy()

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one image's (``H x W``) or a batch's (``B x H x W``) counts."""
        dev = self._counts.device
        pred, target = torch.as_tensor(pred).to(dev), torch.as_tensor(target).to(dev)
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        k = self.num_classes
        for p, t in zip(pred, target):
            invalid = t == self.ignore_index
            g = other_label_within(t, self.width, invalid)  # class t's band (ignored pixels: never t's class)
            q = other_label_within(p, self.width, invalid) & ~invalid
            # each band pixel's class, k where it counts for none (outside the band, or a label outside 0..k-1)
            tc = torch.where(g & (t >= 0) & (t < k), t, k)
            pc = torch.where(q & (p >= 0) & (p < k), p, k)
            both = torch.where(tc == pc, tc, k)
            counts = bin_counts(torch.stack([tc, pc + (k + 1), both + 2 * (k + 1)]), 3 * (k + 1)).view(3, k + 1)
            self._counts[0] += counts[2, :k]
            self._counts[1] += counts[0, :k] + counts[1, :k] - counts[2, :k]

    def all_reduce(self, device: torch.device | str | None = None) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = self._counts.to(device) if device is not None else self._counts
            torch.distributed.all_reduce(t)
            self._counts = t.to(self._counts.device)

    def per_class(self) -> list[float | None]:
        return [None if u == 0 else float(i / u) for i, u in zip(self.inter.tolist(), self.union.tolist())]

    def mean(self) -> float:
        values = [v for v in self.per_class() if v is not None]
        return sum(values) / len(values) if values else float("nan")
