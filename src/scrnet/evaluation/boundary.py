"""Boundary IoU (Cheng et al., CVPR 2021), accumulated over a split like the confusion matrix.

For class c, ``G_d`` is the part of the ground-truth mask of c within ``width`` pixels of its contour (the mask
minus its erosion by a (2 width + 1) square, i.e. chessboard distance) and ``P_d`` the same for the prediction;
boundary IoU = |G_d ∩ P_d| / |G_d ∪ P_d| with intersections and unions summed over all images. Pixels labelled
ignore are excluded from both bands, and an edge against ignored pixels is not a contour, in the ground truth or the
prediction (what lies beyond it is unknown); a class with an empty union over the split is skipped (None).
"""

import cv2
import numpy as np
import torch


class BoundaryIoU:
    def __init__(self, num_classes: int, width: int = 3, ignore_index: int = 255):
        self.num_classes, self.width, self.ignore_index = num_classes, width, ignore_index
        self.inter = np.zeros(num_classes, dtype=np.int64)
        self.union = np.zeros(num_classes, dtype=np.int64)
        self.kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)

    def _band(self, mask: np.ndarray, neutral: np.ndarray | None = None) -> np.ndarray:
        """Pixels of ``mask`` within ``width`` of its contour; ``neutral`` pixels (and the image edge) do not make
        a contour."""
        solid = mask if neutral is None else (mask | neutral)
        eroded = cv2.erode(solid.astype(np.uint8), self.kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        return mask & ~eroded.astype(bool)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        pred = pred.cpu().numpy() if isinstance(pred, torch.Tensor) else pred
        target = target.cpu().numpy() if isinstance(target, torch.Tensor) else target
        valid = target != self.ignore_index
        for c in np.union1d(np.unique(pred[valid]), np.unique(target[valid])):
            if c >= self.num_classes:
                continue
            g = self._band(target == c, ~valid)
            p = self._band(pred == c, ~valid) & valid
            self.inter[c] += int(np.count_nonzero(g & p))
            self.union[c] += int(np.count_nonzero(g | p))

    def all_reduce(self, device: torch.device | str = "cpu") -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            t = torch.from_numpy(np.stack([self.inter, self.union])).to(device)
            torch.distributed.all_reduce(t)
            t = t.cpu()
            self.inter, self.union = t[0].numpy().copy(), t[1].numpy().copy()

    def per_class(self) -> list[float | None]:
        return [None if u == 0 else float(i / u) for i, u in zip(self.inter.tolist(), self.union.tolist())]

    def mean(self) -> float:
        values = [v for v in self.per_class() if v is not None]
        return sum(values) / len(values) if values else float("nan")
