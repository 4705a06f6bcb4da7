"""Test oracle: the published boundary metrics in NumPy and OpenCV, one class at a time (scrnet's implementation
until the tensor one in ``scrnet.evaluation.published_boundary`` replaced it; the tests require equal counts).

Definitions:

- **Boundary IoU** (Cheng et al., CVPR 2021, and its reference API): for class c, ``G_d`` is the ground-truth
  mask of c minus its erosion by a 3x3 square applied ``d`` times, with the image padded by zeros (so the image
  edge is a contour, as in the reference), ``d = max(1, round(dilation_ratio * image diagonal))``; ``P_d`` the same
  for the prediction. Boundary IoU = sum |G_d ∩ P_d| / sum |G_d ∪ P_d| over the split. Pixels labelled ignore are
  left out of the counts, and the prediction's mask of c excludes them (so their edge is a contour on both sides).
- **Boundary F-score** at pixel tolerances (3, 5, 9, 12 by default; Gated-SCNN's and SFNet's convention): the
  boundary of a mask is its inner one-pixel contour (the image edge is not a contour here, as in the DAVIS-style
  ``seg2bmap`` those evaluations use); a predicted boundary pixel is matched when a ground-truth boundary pixel of
  the same class lies within the tolerance (Euclidean distance), and the other way round. Precision = matched
  predicted / predicted boundary pixels and recall = matched ground truth / ground-truth boundary pixels, each summed
  over the split; F = 2PR / (P + R). The mean is over the classes with ground-truth boundary pixels in the split; a
  class absent from the ground truth (predicted or not) is None and does not enter the mean.
- **mIoU in distance bands**: each labelled pixel's Euclidean distance to the nearest ground-truth boundary (a
  pixel whose 4-neighbour has another valid label); one confusion matrix per band (0-2, 2-4, 4-8, 8-16, 16+ px);
  mIoU per band as for the whole image. Where along the distance axis a model gains.

Direct NumPy transcriptions of each definition (loops over pixels, explicit distances) are in
``tests/unit/evaluation/test_published_boundary.py``; they check this oracle on small masks.
"""

import math

import cv2
import numpy as np

from scrnet.evaluation import published_boundary

SQUARE = np.ones((3, 3), np.uint8)
__all__ = ["PublishedBoundaryMetrics", "biou_star_counts", "contour", "dilation_pixels", "distance_to", "inner_band"]


def biou_star_counts(pred, target, k: int, width: int, ignore: int = 255) -> np.ndarray:
    """BIoU* (our fixed band) by OpenCV, one class at a time (scrnet's CPU implementation until the one band code
    replaced it): ``2 x k`` intersections and unions. Per class, the band is the mask minus its erosion by a
    (2 width + 1) square, ignored pixels and the outside of the image counting as part of the mask (neutral); the
    prediction's band is restricted to labelled pixels."""
    pred, target = np.asarray(pred), np.asarray(target)
    if pred.ndim == 2:
        pred, target = pred[None], target[None]
    kernel = np.ones((2 * width + 1, 2 * width + 1), np.uint8)

    def band(mask: np.ndarray, neutral: np.ndarray) -> np.ndarray:
        eroded = cv2.erode((mask | neutral).astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=1)
        return mask & ~eroded.astype(bool)

    counts = np.zeros((2, k), np.int64)
    for p, t in zip(pred, target):
        valid = t != ignore
        for c in np.union1d(np.unique(p[valid]), np.unique(t[valid])):
            if not 0 <= c < k:
                continue
            g = band(t == c, ~valid)
            q = band(p == c, ~valid) & valid
            counts[0, c] += np.count_nonzero(g & q)
            counts[1, c] += np.count_nonzero(g | q)
    return counts


def dilation_pixels(shape: tuple[int, int], ratio: float) -> int:
    """The Boundary IoU band width of an ``H x W`` image: ``max(1, round(ratio * diagonal))``."""
    return max(1, int(round(ratio * math.hypot(*shape))))


def inner_band(mask: np.ndarray, d: int) -> np.ndarray:
    """``mask`` minus its erosion by a 3x3 square ``d`` times (one erosion by a (2d + 1) square, which OpenCV does
    in time independent of d), outside the image counted as background."""
    kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
    eroded = cv2.erode(mask.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & ~eroded.astype(bool)


def contour(mask: np.ndarray) -> np.ndarray:
    """The inner one-pixel contour of ``mask``; the image edge is not a contour."""
    eroded = cv2.erode(mask.astype(np.uint8), SQUARE, borderType=cv2.BORDER_REPLICATE)
    return mask & ~eroded.astype(bool)


def distance_to(points: np.ndarray) -> np.ndarray:
    """Each pixel's Euclidean distance to the nearest ``True`` of ``points`` (inf when there is none)."""
    if not points.any():
        return np.full(points.shape, np.inf, np.float32)
    return cv2.distanceTransform((~points).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def label_boundary_distance(target: np.ndarray, ignore_index: int) -> np.ndarray:
    """Each pixel's Euclidean distance to the nearest pixel whose right or lower neighbour has another valid label
    (both pixels of such a pair are boundary pixels)."""
    valid = target != ignore_index
    edge = np.zeros(target.shape, bool)
    right = (target[:, 1:] != target[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    down = (target[1:] != target[:-1]) & valid[1:] & valid[:-1]
    edge[:, 1:] |= right
    edge[:, :-1] |= right
    edge[1:] |= down
    edge[:-1] |= down
    if not edge.any():
        return np.full(target.shape, np.inf, np.float32)
    return cv2.distanceTransform((~edge).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """The bounding box of ``mask`` grown by ``margin`` pixels, clipped to the image."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    h, w = mask.shape
    return (slice(max(rows[0] - margin, 0), min(rows[-1] + margin + 1, h)),
            slice(max(cols[0] - margin, 0), min(cols[-1] + margin + 1, w)))


class PublishedBoundaryMetrics(published_boundary.PublishedBoundaryMetrics):
    """Accumulates Boundary IoU, boundary F-scores and distance-band confusion matrices over images."""

    def __init__(self, num_classes: int, dilation_ratio: float = 0.02, tolerances=(3, 5, 9, 12),
                 bands=(0, 2, 4, 8, 16), ignore_index: int = 255):
        self.k, self.ratio, self.ignore = num_classes, dilation_ratio, ignore_index
        self.f_mode = "pooled"  # the oracle of the pooled F-score (ours)
        self.tolerances = tuple(tolerances)
        self.bands = tuple(bands)
        # NumPy counts under the names the library's reporting methods (inherited: boundary_iou, boundary_f,
        # band_miou, to_json) read; only the counting below is the oracle's own
        self._biou = np.zeros((2, num_classes), np.int64)  # intersections, unions
        self._f = np.zeros((len(self.tolerances), 4, num_classes), np.int64)  # matched pred, pred, matched gt, gt
        self._band_cm = np.zeros((len(self.bands), num_classes, num_classes), np.int64)

    biou = property(lambda self: self._biou)
    f = property(lambda self: self._f)
    band_cm = property(lambda self: self._band_cm)

    def update(self, pred, target) -> None:
        pred = np.asarray(pred.cpu() if hasattr(pred, "cpu") else pred).astype(np.int64)
        target = np.asarray(target.cpu() if hasattr(target, "cpu") else target).astype(np.int64)
        valid = target != self.ignore
        d = dilation_pixels(target.shape, self.ratio)
        present = np.union1d(np.unique(pred[valid]), np.unique(target[valid]))
        for c in present[present < self.k]:
            g, p = target == c, (pred == c) & valid
            # every count below only sees pixels near class c: work on its bounding box with a one-pixel margin
            # (outside it both masks are background, which the zero padding and the margin reproduce exactly)
            crop = _box(g | p, 1)
            g, p, v = g[crop], p[crop], valid[crop]
            gb, pb = inner_band(g, d), inner_band(p, d) & v
            self._biou[0, c] += np.count_nonzero(gb & pb)
            self._biou[1, c] += np.count_nonzero(gb | pb)
            gc, pc = contour(g), contour(p) & v
            to_g, to_p = distance_to(gc)[pc], distance_to(pc)[gc]  # distances of one contour's pixels to the other
            for i, tol in enumerate(self.tolerances):
                self._f[i, 0, c] += np.count_nonzero(to_g <= tol + 1e-6)
                self._f[i, 1, c] += to_g.size
                self._f[i, 2, c] += np.count_nonzero(to_p <= tol + 1e-6)
                self._f[i, 3, c] += to_p.size
        distance = label_boundary_distance(target, self.ignore)
        band = np.searchsorted(np.asarray(self.bands[1:], np.float32), distance, side="right")
        keep = valid & (pred < self.k)
        index = (band[keep] * self.k + target[keep]) * self.k + pred[keep]
        self._band_cm += np.bincount(index, minlength=self._band_cm.size).reshape(self._band_cm.shape)
