"""Boundary IoU (Cheng et al., CVPR 2021), accumulated over a split like the confusion matrix.

For class c, ``G_d`` is the part of the ground-truth mask of c within ``width`` pixels of its contour (the mask
minus its erosion by a (2 width + 1) square, i.e. chessboard distance) and ``P_d`` the same for the prediction;
boundary IoU = |G_d ∩ P_d| / |G_d ∪ P_d| with intersections and unions summed over all images. Pixels labelled
ignore are excluded from both bands, and an edge against ignored pixels is not a contour, in the ground truth or the
prediction (what lies beyond it is unknown); a class with an empty union over the split is skipped (None).

Two implementations with equal integer counts (tested): on CUDA the bands are computed on the device, all classes at
once, with the square erosion as two separable min-pools, and the counts stay there until they are read, so
:meth:`update` never waits for the GPU; on the CPU, OpenCV's ``cv2.erode`` per present class (the torch path is
much slower there; ``benchmarks/boundary_metrics.py`` measures both).
"""

import cv2
import numpy as np
import torch
import torch.nn.functional as F

CLASS_CHUNK = 16  # classes whose K x H x W one-hot planes are processed at once (bounds the memory)


class BoundaryIoU:
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

    def _erode(self, solid: torch.Tensor) -> torch.Tensor:
        """Erosion of ``N x H x W`` 0/1 planes by a (2 width + 1) square; outside the image counts as solid (the
        image edge is not a contour). Min-pool = 1 - max-pool of the complement; max-pool pads with -inf, which
        leaves out-of-image pixels out of the window, i.e. treats them as solid."""
        k, w = 2 * self.width + 1, self.width
        holes = (1 - solid).unsqueeze(1)
        holes = F.max_pool2d(holes, (1, k), stride=1, padding=(0, w))
        holes = F.max_pool2d(holes, (k, 1), stride=1, padding=(w, 0))
        return (1 - holes).squeeze(1)

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Add one image's (``H x W``) or a batch's (``B x H x W``) counts."""
        if self._counts.device.type == "cuda":
            self.update_torch(pred, target)
        else:
            self.update_opencv(pred, target)

    def update_opencv(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        pred = pred.cpu().numpy() if isinstance(pred, torch.Tensor) else np.asarray(pred)
        target = target.cpu().numpy() if isinstance(target, torch.Tensor) else np.asarray(target)
        if pred.ndim == 2:
            pred, target = pred[None], target[None]
        kernel = np.ones((2 * self.width + 1, 2 * self.width + 1), np.uint8)

        def band(mask: np.ndarray, neutral: np.ndarray) -> np.ndarray:
            eroded = cv2.erode((mask | neutral).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT,
                               borderValue=1)
            return mask & ~eroded.astype(bool)

        counts = np.zeros((2, self.num_classes), np.int64)
        for p, t in zip(pred, target):
            valid = t != self.ignore_index
            for c in np.union1d(np.unique(p[valid]), np.unique(t[valid])):
                if c >= self.num_classes:
                    continue
                g = band(t == c, ~valid)
                q = band(p == c, ~valid) & valid
                counts[0, c] += np.count_nonzero(g & q)
                counts[1, c] += np.count_nonzero(g | q)
        self._counts += torch.from_numpy(counts).to(self._counts.device)

    def update_torch(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        dev = self._counts.device
        pred = torch.as_tensor(pred).to(dev)
        target = torch.as_tensor(target).to(dev)
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        # max_pool2d has no integer kernels; 0/1 values are exact in half precision, which CUDA pools fastest
        dtype = torch.float16 if dev.type == "cuda" else torch.float32
        for b in range(pred.shape[0]):
            t, p = target[b].long(), pred[b].long()
            valid = t != self.ignore_index
            neutral = (~valid).to(dtype)
            for start in range(0, self.num_classes, CLASS_CHUNK):
                classes = torch.arange(start, min(start + CLASS_CHUNK, self.num_classes), device=dev)
                t1 = (t[None] == classes[:, None, None]).to(dtype)
                p1 = (p[None] == classes[:, None, None]).to(dtype)
                g = t1 * (1 - self._erode(torch.maximum(t1, neutral)))
                q = p1 * (1 - self._erode(torch.maximum(p1, neutral))) * (1 - neutral)
                both = torch.stack([torch.count_nonzero(g * q, dim=(1, 2)),
                                    torch.count_nonzero(torch.maximum(g, q), dim=(1, 2))])
                self._counts[:, start:start + len(classes)] += both

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
