"""Test oracles written from the published descriptions of two metrics, independent of scrnet's code and of the
other oracle (``boundary_oracle.py``, scrnet's former implementation):

- **Boundary IoU** (Cheng et al., CVPR 2021, reference API ``boundary_iou_api``): ``mask_to_boundary`` pads the
  binary mask with one pixel of zeros, erodes it with a 3x3 square ``d`` times (``d = max(1, round(ratio x image
  diagonal))``), crops the padding off and keeps the mask minus its erosion; Boundary IoU = |G ∩ P| / |G ∪ P| of
  the ground truth's and the prediction's boundaries. Summed over the images of a split per class, with scrnet's
  documented treatment of ignored pixels: the prediction's mask leaves them out and they are not counted.
- **Boundary F, per image** (DAVIS's ``db_eval_boundary`` as Gated-SCNN's ``eval_mask_boundary`` applies it to
  semantic segmentation): per image and class, both binary masks are zeroed where the label is ignored; the
  boundary map ``seg2bmap`` marks each pixel that differs from its east, south or south-east neighbour (only those
  inside the image); each boundary is dilated by a disk of the tolerance's radius (x² + y² <= r²); P = predicted
  boundary pixels under the dilated ground truth / predicted boundary pixels, R the other way round; no predicted
  boundary: P = 1, no ground-truth boundary: R = 1; F = 2PR / (P + R), 0 when P + R = 0. A class's score is the
  mean of its F over all images; the overall score is the mean over all classes.
"""

import math

import cv2
import numpy as np


def mask_to_boundary(mask: np.ndarray, dilation_ratio: float) -> np.ndarray:
    h, w = mask.shape
    d = max(1, int(round(dilation_ratio * math.sqrt(h * h + w * w))))
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    eroded = cv2.erode(padded, np.ones((3, 3), np.uint8), iterations=d)[1:h + 1, 1:w + 1]
    return (mask.astype(np.uint8) - eroded).astype(bool)


def boundary_iou_counts(preds, targets, k: int, ratio: float, ignore: int = 255) -> np.ndarray:
    """``2 x k`` intersections and unions summed over the images."""
    out = np.zeros((2, k), np.int64)
    for pred, target in zip(preds, targets):
        valid = target != ignore
        for c in range(k):
            g = mask_to_boundary(target == c, ratio)
            p = mask_to_boundary((pred == c) & valid, ratio) & valid
            out[0, c] += np.count_nonzero(g & p)
            out[1, c] += np.count_nonzero(g | p)
    return out


def seg2bmap(mask: np.ndarray) -> np.ndarray:
    h, w = mask.shape
    out = np.zeros_like(mask, dtype=bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0), (1, 1)):
                if y + dy < h and x + dx < w and mask[y, x] != mask[y + dy, x + dx]:
                    out[y, x] = True
    return out


def disk(r: int) -> np.ndarray:
    y, x = np.mgrid[-r:r + 1, -r:r + 1]
    return (x * x + y * y <= r * r).astype(np.uint8)


def image_f(pred_mask: np.ndarray, gt_mask: np.ndarray, tolerance: int) -> float:
    fg, gt = seg2bmap(pred_mask), seg2bmap(gt_mask)
    fg_dil = cv2.dilate(fg.astype(np.uint8), disk(tolerance)).astype(bool)
    gt_dil = cv2.dilate(gt.astype(np.uint8), disk(tolerance)).astype(bool)
    n_fg, n_gt = fg.sum(), gt.sum()
    precision = (fg & gt_dil).sum() / n_fg if n_fg else 1.0
    recall = (gt & fg_dil).sum() / n_gt if n_gt else 1.0
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def per_image_boundary_f(preds, targets, k: int, tolerances, ignore: int = 255) -> np.ndarray:
    """``len(tolerances) x k``: each class's F averaged over the images."""
    out = np.zeros((len(tolerances), k))
    for pred, target in zip(preds, targets):
        keep = target != ignore
        for c in range(k):
            for i, t in enumerate(tolerances):
                out[i, c] += image_f((pred == c) & keep, (target == c) & keep, t)
    return out / len(preds)
