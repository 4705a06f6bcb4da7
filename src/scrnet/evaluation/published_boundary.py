"""Boundary metrics as the field publishes them, accumulated over a split as tensor code on the predictions' device.

Definitions (for class c; ``valid`` = label is not the ignore index):

- **Boundary IoU** (Cheng et al., CVPR 2021, and its reference API): ``G_d`` is the ground-truth mask of c minus
  its erosion by a 3x3 square applied ``d`` times, with the image padded by zeros (so the image edge is a contour,
  as in the reference), ``d = max(1, round(dilation_ratio * image diagonal))``; ``P_d`` the same for the
  prediction. Boundary IoU = sum |G_d ∩ P_d| / sum |G_d ∪ P_d| over the split. Pixels labelled ignore are left out
  of the counts, and the prediction's mask of c excludes them (so their edge is a contour on both sides).
- **Boundary F-score** at pixel tolerances (3, 5, 9, 12 by default: Gated-SCNN's thresholds at Cityscapes' full
  resolution), in one of two modes (``f_mode``); in both a boundary pixel of a class is matched when a boundary pixel
  of the same class on the other side (prediction / ground truth) lies within the tolerance (Euclidean distance).

  - ``"pooled"`` (ours, the default): the boundary of a class is its inner one-pixel contour (pixels of the mask
    with a pixel outside it among their 8 neighbours; the image edge is not a contour). Precision = matched
    predicted / predicted boundary pixels and recall = matched ground truth / ground-truth boundary pixels, each
    summed over the split; F = 2PR / (P + R). The mean is over the classes with ground-truth boundary pixels in the
    split; a class absent from the ground truth (predicted or not) is None and does not enter the mean.
  - ``"per_image"`` (the published convention of Gated-SCNN, SFNet and others, after DAVIS's ``db_eval_boundary``):
    per image and class, the masks are zeroed at ignored pixels and the boundary is ``seg2bmap``'s (pixels that
    differ from their east, south or south-east neighbour inside the image: on one side of a vertical or horizontal
    edge, the west or north one); P = matched / predicted boundary pixels (1 when the prediction has none), R the
    same for the ground truth (1 when it has none), F = 2PR / (P + R) (0 when both are 0); a class's F is the mean
    of its per-image F over every image, including those where it is absent from both (F = 1 there, as published),
    and the mean is over every class.
- **mIoU in distance bands**: each labelled pixel's Euclidean distance to the nearest ground-truth boundary (a
  pixel whose 4-neighbour has another valid label); one confusion matrix per band (0-2, 2-4, 4-8, 8-16, 16+ px);
  mIoU per band as for the whole image. Where along the distance axis a model gains.

How (all classes at once, integer counts equal to the per-class NumPy/OpenCV oracle in the tests):

- A pixel of class c is in its class's Boundary IoU band exactly when the ``(2d + 1)`` square around it holds
  another label or leaves the image: the window maximum or minimum of the labels differs from its own
  (:func:`other_label_within`, the band code BIoU* shares, with ignored pixels neutral there).
- Contours: a pixel whose label differs from one of its 8 neighbours' (four difference maps).
- F: each contour pixel's squared distance to the nearest contour pixel of the same class on the other side, up to
  the largest tolerance, from the candidate pairs of a grid of 8-pixel cells per class (sorted, counted, expanded;
  a pixel matched by a contour pixel of its own class at the same position is settled before). Distances are
  exact integers ``dy² + dx²``; candidate pairs are expanded in chunks, so memory stays bounded on any image.
- Distance bands: the vertical distance to the nearest edge pixel per column (truncated at the last band edge),
  then, per band edge ``t``, whether some ``dx`` has ``dx² + g(x + dx)² < t²``: an exact truncated Euclidean
  distance transform in shifted boolean ORs.

Label values outside ``0..K-1`` other than the ignore index are an error of the data (the confusion matrix refuses
them); here they count as ignored.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from .metrics import bin_counts, miou_of

__all__ = ["PublishedBoundaryMetrics", "dilation_pixels"]

CELL = 8  # side of the grid cells that index contour pixels for the F-score's pair search
# the F-score's pair search gives way to comparing shifted label maps when there are more than this many candidate
# pairs per pixel, or queries per pixel (then the search's set-up alone costs more): about the break-even on a CPU
# at the default tolerances; benchmarks/boundary_metrics.py's noise case crosses both
DENSE_PAIRS_PER_PIXEL = 0.5
DENSE_QUERIES_PER_PIXEL = 0.25
MAX_PAIRS = 1 << 22  # candidate pairs expanded at once (bounds the memory of one chunk: ~200 MB of int64 work)
# the F-score by distance transform: classes whose C x H x W planes are transformed at once, as pixels (bounds the
# memory: about 16 bytes per pixel of a chunk at the default tolerances)
TRANSFORM_PIXELS = 1 << 24
F_METHODS = ("auto", "search", "transform")
F_MODES = ("pooled", "per_image")


def dilation_pixels(shape: tuple[int, int], ratio: float) -> int:
    """The Boundary IoU band width of an ``H x W`` image: ``max(1, round(ratio * diagonal))``."""
    return max(1, int(round(ratio * math.hypot(*shape))))


# ------------------------------------------------------------------------------------------- boolean map helpers
def other_label_within(labels: torch.Tensor, d: int, neutral: torch.Tensor | None = None,
                       backend: str = "auto") -> torch.Tensor:
    """Pixels whose ``(2d + 1)`` square holds, inside the image, a pixel that is not ``neutral`` and is labelled
    otherwise than they are (``H x W`` bool): the window maximum and minimum of the labels, neutral pixels and the
    outside of the image taking no part. The one band code of the boundary metrics: BIoU*'s band (ignored pixels
    neutral) and, with the image's frame added, Boundary IoU's (:func:`boundary_band`).

    Window maxima and minima are separable: OpenCV's ``dilate`` / ``erode`` on 16-bit labels on the CPU (``backend
    "opencv"``, the CPU's default: ~80x faster there than pooling), ``max_pool2d`` on float32 labels elsewhere
    (``"torch"``: tensor code on the labels' device, no host synchronisation). Equal results (tested)."""
    if backend == "auto":
        backend = "opencv" if labels.device.type == "cpu" else "torch"
    if backend == "opencv":
        lab = labels.to(torch.int64)
        if lab.numel() and (int(lab.min()) < 0 or int(lab.max()) > 65533):
            backend = "torch"  # labels outside what 16 bits hold with the two neutral values
    if backend == "opencv":
        import cv2

        kernel = np.ones((2 * d + 1, 2 * d + 1), np.uint8)
        shifted = (lab + 1).to(torch.int32).numpy().astype(np.uint16)  # 0 and 65535: the neutral values
        low, high = shifted.copy(), shifted.copy()
        if neutral is not None:
            mask = neutral.numpy()
            low[mask], high[mask] = 0, 65535
        top = cv2.dilate(low, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        bottom = cv2.erode(high, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=65535)
        return torch.from_numpy((top > shifted) | (bottom < shifted))
    k = 2 * d + 1
    lab = labels.to(torch.float32)[None, None]  # labels up to 2**24 are exact
    hi, lo = lab, -lab
    if neutral is not None:
        hi, lo = hi.masked_fill(neutral, float("-inf")), lo.masked_fill(neutral, float("-inf"))

    def window_max(x: torch.Tensor) -> torch.Tensor:  # max_pool2d pads with -inf: the outside takes no part
        return F.max_pool2d(F.max_pool2d(x, (1, k), 1, (0, d)), (k, 1), 1, (d, 0))

    return ((window_max(hi) > lab) | (-window_max(lo) < lab))[0, 0]


def boundary_band(labels: torch.Tensor, d: int) -> torch.Tensor:
    """Pixels whose ``(2d + 1)`` square holds another label or leaves the image (``H x W`` bool)."""
    h, w = labels.shape
    band = torch.ones_like(labels, dtype=torch.bool)
    if h <= 2 * d or w <= 2 * d:
        return band  # every square leaves the image
    band[d:h - d, d:w - d] = other_label_within(labels, d)[d:h - d, d:w - d]  # the frame: squares that leave it
    return band


def contour_map(labels: torch.Tensor) -> torch.Tensor:
    """Pixels with a differently labelled pixel among their 8 neighbours inside the image (``H x W`` bool)."""
    out = torch.zeros_like(labels, dtype=torch.bool)
    right = labels[:, 1:] != labels[:, :-1]
    down = labels[1:] != labels[:-1]
    diag = labels[1:, 1:] != labels[:-1, :-1]
    anti = labels[1:, :-1] != labels[:-1, 1:]
    out[:, 1:] |= right
    out[:, :-1] |= right
    out[1:] |= down
    out[:-1] |= down
    out[1:, 1:] |= diag
    out[:-1, :-1] |= diag
    out[1:, :-1] |= anti
    out[:-1, 1:] |= anti
    return out


def seg2bmap(masks: torch.Tensor) -> torch.Tensor:
    """The published boundary map of boolean masks (``... x H x W``): pixels that differ from their east, south or
    south-east neighbour inside the image (DAVIS's ``seg2bmap`` at the mask's own size)."""
    out = torch.zeros_like(masks)
    out[..., :, :-1] |= masks[..., :, :-1] ^ masks[..., :, 1:]
    out[..., :-1, :] |= masks[..., :-1, :] ^ masks[..., 1:, :]
    out[..., :-1, :-1] |= masks[..., :-1, :-1] ^ masks[..., 1:, 1:]
    return out


def edge_map(labels: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Pixels with a 4-neighbour of another label, both labelled (``H x W`` bool)."""
    out = torch.zeros_like(valid)
    right = (labels[:, 1:] != labels[:, :-1]) & valid[:, 1:] & valid[:, :-1]
    down = (labels[1:] != labels[:-1]) & valid[1:] & valid[:-1]
    out[:, 1:] |= right
    out[:, :-1] |= right
    out[1:] |= down
    out[:-1] |= down
    return out


def distance_band(edges: torch.Tensor, edges_sq: list[int]) -> torch.Tensor:
    """For each pixel, how many of the squared band edges ``edges_sq`` its squared Euclidean distance to the
    nearest ``True`` of ``edges`` reaches (uint8, the shape of ``edges``: ``... x H x W``, each ``H x W`` plane on
    its own; no ``True`` in a plane: every edge)."""
    h, w = edges.shape[-2:]
    count = torch.zeros(edges.shape, dtype=torch.uint8, device=edges.device)
    needed = [m for m in edges_sq if m > 0]
    count += len(edges_sq) - len(needed)  # an edge at distance 0 is reached by every pixel
    if not needed:
        return count
    reach = math.isqrt(max(needed) - 1)  # farthest offset that can fall below an edge
    # g: vertical distance to the nearest edge pixel of the column, truncated at reach + 1 (uint8 while that fits:
    # band edges above 255 px need a wider count, or the distances wrap around)
    g = torch.zeros(edges.shape, dtype=torch.uint8 if reach < 255 else torch.int32, device=edges.device)
    near = edges.clone()
    for k in range(reach + 1):
        g += ~near
        if k < reach and k + 1 < h:
            near[..., k + 1:, :] |= edges[..., :-(k + 1), :]
            near[..., :-(k + 1), :] |= edges[..., k + 1:, :]
    within = {}  # a -> g <= a
    for m in needed:
        close = torch.zeros_like(edges)
        r = math.isqrt(m - 1)
        for dx in range(-r, r + 1):
            if abs(dx) >= w:
                continue
            a = math.isqrt(m - 1 - dx * dx)  # g(x + dx)^2 <= m - 1 - dx^2
            if a not in within:
                within[a] = g <= a
            src = within[a]
            if dx >= 0:
                close[..., :w - dx] |= src[..., dx:]
            else:
                close[..., -dx:] |= src[..., :w + dx]
        count += ~close
    return count


# --------------------------------------------------------------------------------------- nearest same-class pixel
def nearest_same_class_sq(query: torch.Tensor, query_class: torch.Tensor, points: torch.Tensor,
                          point_class: torch.Tensor, num_classes: int, shape: tuple[int, int],
                          reach: int, pair_limit: int | None = None) -> torch.Tensor | None:
    """For each query pixel (``N x 2`` rows, columns), the squared Euclidean distance to the nearest of ``points``
    (``M x 2``) of the same class, or ``reach² + 1`` when none lies within ``reach`` pixels. Exact: every pair in
    the cells around a query is measured. None, before any pair is measured, when there are more than
    ``pair_limit`` pairs."""
    dev = query.device
    none = reach * reach + 1
    best = torch.full((len(query),), none, dtype=torch.int64, device=dev)
    if len(query) == 0 or len(points) == 0:
        return best
    h, w = shape
    gy, gx = (h + CELL - 1) // CELL, (w + CELL - 1) // CELL
    key = (point_class * gy + points[:, 0] // CELL) * gx + points[:, 1] // CELL
    key, order = torch.sort(key)
    points = points[order]
    per_cell = bin_counts(key, num_classes * gy * gx)
    ends = torch.cumsum(per_cell, 0)
    starts = ends - per_cell
    rows = (2 * reach) // CELL + 2  # most cell rows a query's square [y - reach, y + reach] meets
    y, x = query[:, 0], query[:, 1]
    cy0, cy1 = (y - reach).clamp(min=0) // CELL, (y + reach).clamp(max=h - 1) // CELL
    cx0, cx1 = (x - reach).clamp(min=0) // CELL, (x + reach).clamp(max=w - 1) // CELL
    cy = cy0[:, None] + torch.arange(rows, device=dev)
    base = (query_class[:, None] * gy + cy.clamp(max=gy - 1)) * gx
    first, last = starts[base + cx0[:, None]], ends[base + cx1[:, None]]
    length = torch.where(cy <= cy1[:, None], last - first, 0)  # N x rows: the points of one run of cells
    per_query = length.sum(1)
    total = torch.cumsum(per_query, 0)
    if pair_limit is not None and int(total[-1]) > pair_limit:
        return None
    done = 0
    while done < len(query):  # chunks of queries with at most MAX_PAIRS pairs (one query may exceed it alone)
        offset = int(total[done - 1]) if done else 0
        stop = max(int(torch.searchsorted(total, offset + MAX_PAIRS, right=True)), done + 1)
        lengths = length[done:stop].reshape(-1)
        run = torch.repeat_interleave(torch.arange(len(lengths), device=dev), lengths)
        if len(run):
            within_run = torch.arange(len(run), device=dev) - (torch.cumsum(lengths, 0) - lengths)[run]
            point = points[first[done:stop].reshape(-1)[run] + within_run]
            owner = run // rows + done
            d2 = (query[owner] - point).square().sum(1)
            best.scatter_reduce_(0, owner, d2, "amin")
        done = stop
    return best.clamp(max=none)


def nearest_same_class_dense(query: torch.Tensor, points: torch.Tensor, levels_sq: list[int]) -> torch.Tensor:
    """The dense counterpart of :func:`nearest_same_class_sq`, for images where pairs are too many (noise-like
    labels): ``query`` and ``points`` are ``H x W`` label maps (where a pixel is not a query, resp. not a point, a
    label that never occurs on the other map); for every pixel, the least of the squared distances ``levels_sq``
    (ascending) within which a point of the query's label lies, or ``max(levels_sq) + 1``. One comparison of shifted
    maps per offset of the largest disk."""
    h, w = query.shape
    out = torch.full(query.shape, levels_sq[-1] + 1, dtype=torch.int64, device=query.device)
    found = torch.zeros(query.shape, dtype=torch.bool, device=query.device)
    reach = math.isqrt(levels_sq[-1])
    previous = -1
    for level in levels_sq:
        for dy in range(-reach, reach + 1):
            for dx in range(-reach, reach + 1):
                if not previous < dy * dy + dx * dx <= level or abs(dy) >= h or abs(dx) >= w:
                    continue
                ys, xs = slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx))
                yt, xt = slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx))
                found[ys, xs] |= query[ys, xs] == points[yt, xt]
        out.masked_fill_(found & (out > level), level)
        previous = level
    return out


class PublishedBoundaryMetrics:
    """Accumulates Boundary IoU, boundary F-scores and distance-band confusion matrices over images, on ``device``
    (the counts stay there until read, so :meth:`update` waits for the device only to size the F-score's pair
    search)."""

    def __init__(self, num_classes: int, dilation_ratio: float = 0.02, tolerances=(3, 5, 9, 12),
                 bands=(0, 2, 4, 8, 16), ignore_index: int = 255, device: str | torch.device = "cpu",
                 f_method: str = "auto", f_mode: str = "pooled"):
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore index {ignore_index} is one of the {num_classes} classes")
        if f_method not in F_METHODS:
            raise ValueError(f"f_method must be one of {F_METHODS}, not {f_method!r}")
        if f_mode not in F_MODES:
            raise ValueError(f"f_mode must be one of {F_MODES}, not {f_mode!r}")
        self.f_mode = f_mode
        # "search": the pair search (fastest on a CPU; sizes its work from the image, so it reads counts back from
        # the device); "transform": per-class distance transforms in fixed-size tensor code (no host
        # synchronisation, the default on CUDA); equal integer counts (tested)
        self.f_method = f_method if f_method != "auto" else ("transform" if torch.device(device).type == "cuda"
                                                             else "search")
        self.k, self.ratio, self.ignore = num_classes, dilation_ratio, ignore_index
        self.tolerances = tuple(tolerances)
        self.bands = tuple(bands)
        # squared distances: matched when d² <= tol², band edge t reached when d² >= ceil(t²) (as float32 distances)
        self._tol_sq = [math.floor((t + 1e-6) ** 2) for t in self.tolerances]
        self._band_sq = [_reached_at(t) for t in self.bands[1:]]
        self._biou = torch.zeros(2, num_classes, dtype=torch.int64, device=device)  # intersections, unions
        # per tolerance: matched predicted, predicted, matched ground truth, ground-truth boundary pixels
        self._f = torch.zeros(len(self.tolerances), 4, num_classes, dtype=torch.int64, device=device)
        self._band_cm = torch.zeros(len(self.bands), num_classes, num_classes, dtype=torch.int64, device=device)
        # per_image: the sum over images of each class's F per tolerance (float64), and the number of images
        self._f_sum = torch.zeros(len(self.tolerances), num_classes, dtype=torch.float64, device=device)
        self._images = torch.zeros((), dtype=torch.int64, device=device)

    biou = property(lambda self: self._biou.cpu().numpy(), doc="2 x K: intersections, unions (NumPy copy)")
    biou_counts = property(lambda self: self._biou, doc="2 x K: intersections, unions (the tensor on the device)")
    f = property(lambda self: self._f.cpu().numpy(), doc="tolerances x 4 x K (NumPy copy)")
    band_cm = property(lambda self: self._band_cm.cpu().numpy(), doc="bands x K x K (NumPy copy)")

    def _labels(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ground truth and prediction as compact label maps in which ``K`` stands for "no class": ignored and
        out-of-range ground truth, and prediction on those pixels or outside ``0..K-1``."""
        none = self.k
        dtype = torch.uint8 if self.k < 255 else torch.int32
        t = torch.where((target >= 0) & (target < none), target, none).to(dtype)
        p = torch.where((t < none) & (pred >= 0) & (pred < none), pred, none).to(dtype)
        return t, p

    def update(self, pred, target) -> None:
        """Add one image (``H x W``) or a batch (``B x H x W``) of predictions and labels (tensors or arrays)."""
        dev = self._biou.device
        pred, target = torch.as_tensor(pred).to(dev), torch.as_tensor(target).to(dev)
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} differs from label shape {tuple(target.shape)}")
        if pred.dim() == 2:
            pred, target = pred[None], target[None]
        for p, t in zip(pred, target):
            self._update_one(*self._labels(p, t))

    def _update_one(self, t: torch.Tensor, p: torch.Tensor) -> None:
        k = self.k
        t_class, p_class = t < k, p < k
        # Boundary IoU
        d = dilation_pixels(tuple(t.shape), self.ratio)
        g_band = boundary_band(t, d) & t_class
        p_band = boundary_band(p, d) & p_class
        both = g_band & p_band & (t == p)
        inter = _count(t, both, k)
        self._biou[0] += inter
        self._biou[1] += _count(t, g_band, k) + _count(p, p_band, k) - inter
        if self.tolerances and self.f_mode == "per_image":
            self._update_f_per_image(t, p)
        elif self.tolerances:
            self._update_f(t, p, t_class, p_class)
        # distance bands
        band = distance_band(edge_map(t, t_class), self._band_sq)
        kk = k * k
        dtype = torch.int32 if len(self.bands) * kk < 2 ** 31 else torch.int64
        index = torch.where(p_class, (band.to(dtype) * k + t.to(dtype)) * k + p.to(dtype), len(self.bands) * kk)
        self._band_cm += bin_counts(index, len(self.bands) * kk + 1)[:-1].view(len(self.bands), k, k)

    def _update_f(self, t: torch.Tensor, p: torch.Tensor, t_class: torch.Tensor, p_class: torch.Tensor) -> None:
        """Boundary F: contour pixels and their distances to the other side's contour of the same class."""
        if self.f_method == "transform":
            self._update_f_transform(t, p, t_class, p_class)
        else:
            self._update_f_search(t, p, t_class, p_class)

    def _update_f_transform(self, t: torch.Tensor, p: torch.Tensor, t_class: torch.Tensor,
                            p_class: torch.Tensor) -> None:
        """Boundary F without reading anything back: each class's inner contour (:meth:`_matched_by_class`)."""
        g_cont, p_cont = contour_map(t) & t_class, contour_map(p) & p_class
        for part, (n_p, n_g, matched) in self._matched_by_class(
                t, lambda classes: (g_cont & (t == classes), p_cont & (p == classes))):
            counts = self._f[:, :, part]
            counts[:, 1] += n_p
            counts[:, 3] += n_g
            for i, (m_p, m_g) in enumerate(matched):
                counts[i, 0] += m_p
                counts[i, 2] += m_g

    def _update_f_per_image(self, t: torch.Tensor, p: torch.Tensor) -> None:
        """The published boundary F of one image (``f_mode="per_image"``): per class, ``seg2bmap`` boundaries of the
        masks (ignored pixels in no class), matched as in :meth:`_matched_by_class`, and the image's F added to the
        class's sum. No host synchronisation."""
        for part, (n_p, n_g, matched) in self._matched_by_class(
                t, lambda classes: (seg2bmap(t == classes), seg2bmap(p == classes))):
            n_p, n_g = n_p.double(), n_g.double()
            for i, (m_p, m_g) in enumerate(matched):
                precision = torch.where(n_p > 0, m_p.double() / n_p.clamp(min=1), 1.0)
                recall = torch.where(n_g > 0, m_g.double() / n_g.clamp(min=1), 1.0)
                both = precision + recall
                f = torch.where(both > 0, 2 * precision * recall / both.clamp(min=1e-300), 0.0)
                self._f_sum[i, part] += f
        self._images += 1

    def _matched_by_class(self, t: torch.Tensor, boundaries):
        """For chunks of classes (``C x H x W`` planes bounded by ``TRANSFORM_PIXELS``): ``boundaries(classes)``
        gives the ground truth's and the prediction's boundary planes of those classes; each side's truncated
        distance transform (:func:`distance_band`, the squared tolerances + 1 as edges) is read at the other side's
        boundary pixels. Yields ``(slice of classes, (predicted boundary pixels, ground-truth boundary pixels,
        [(matched predicted, matched ground truth) per tolerance]))``, each a ``C`` tensor on the device."""
        levels = sorted({s + 1 for s in self._tol_sq})  # unmatched at tolerance i: d² reaches tol_sq_i + 1
        rank = [levels.index(s + 1) for s in self._tol_sq]  # matched: fewer edges reached than rank + 1
        per_chunk = max(1, TRANSFORM_PIXELS // max(t.numel(), 1))
        for start in range(0, self.k, per_chunk):
            classes = torch.arange(start, min(start + per_chunk, self.k), device=t.device)[:, None, None]
            g_b, p_b = boundaries(classes)
            p_far, g_far = distance_band(g_b, levels), distance_band(p_b, levels)
            matched = [((p_b & (p_far <= r)).sum((1, 2)), (g_b & (g_far <= r)).sum((1, 2))) for r in rank]
            yield slice(start, start + len(classes)), (p_b.sum((1, 2)), g_b.sum((1, 2)), matched)

    def _update_f_search(self, t: torch.Tensor, p: torch.Tensor, t_class: torch.Tensor,
                         p_class: torch.Tensor) -> None:
        k = self.k
        g_cont = contour_map(t) & t_class
        p_cont = contour_map(p) & p_class
        same = g_cont & p_cont & (t == p)  # at distance 0 from a contour pixel of its class on the other side
        settled = _count(t, same, k)
        w = t.shape[1]
        g_at, p_at = g_cont.reshape(-1).nonzero().squeeze(1), p_cont.reshape(-1).nonzero().squeeze(1)
        g_pts, p_pts = torch.stack([g_at // w, g_at % w], 1), torch.stack([p_at // w, p_at % w], 1)
        g_cls, p_cls = t.reshape(-1)[g_at].long(), p.reshape(-1)[p_at].long()
        g_open, p_open = ~same.reshape(-1)[g_at], ~same.reshape(-1)[p_at]  # still to be searched
        shape = tuple(t.shape)
        p_to_g = self._search(p_pts[p_open], p_cls[p_open], g_pts, g_cls, shape)
        if p_to_g is None:  # too many pairs: compare shifted label maps instead
            p_to_g = self._dense(p, p_cont & ~same, t, g_cont).reshape(-1)[p_at[p_open]]
        g_to_p = self._search(g_pts[g_open], g_cls[g_open], p_pts, p_cls, shape)
        if g_to_p is None:
            g_to_p = self._dense(t, g_cont & ~same, p, p_cont).reshape(-1)[g_at[g_open]]
        counts = torch.stack([settled, bin_counts(p_cls, k), settled, bin_counts(g_cls, k)])
        for i, tol_sq in enumerate(self._tol_sq):
            self._f[i] += counts
            self._f[i, 0] += bin_counts(p_cls[p_open][p_to_g <= tol_sq], k)
            self._f[i, 2] += bin_counts(g_cls[g_open][g_to_p <= tol_sq], k)

    def _search(self, query, query_class, points, point_class, shape) -> torch.Tensor | None:
        reach = max(self.tolerances) if self.tolerances else 0
        if len(query) > DENSE_QUERIES_PER_PIXEL * shape[0] * shape[1]:
            return None
        limit = DENSE_PAIRS_PER_PIXEL * shape[0] * shape[1]
        return nearest_same_class_sq(query, query_class, points, point_class, self.k, shape, reach, limit)

    def _dense(self, labels, queries, other, points) -> torch.Tensor:
        query = torch.where(queries, labels, self.k)
        target = torch.where(points, other, self.k + 1)
        return nearest_same_class_dense(query, target, sorted(set(self._tol_sq)))

    def all_reduce(self) -> None:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            for t in (self._biou, self._f, self._band_cm, self._f_sum, self._images):
                torch.distributed.all_reduce(t)

    def boundary_iou(self) -> list[float | None]:
        return [None if u == 0 else float(i / u) for i, u in zip(*self._biou.tolist())]

    def boundary_f(self, i: int) -> list[float | None]:
        if self.f_mode == "per_image":
            images = int(self._images)
            return [None if not images else float(v) / images for v in self._f_sum[i].tolist()]
        out = []
        for mp, np_, mg, ng in zip(*self._f[i].tolist()):
            if ng == 0:
                out.append(None)
                continue
            precision = mp / np_ if np_ else 0.0
            recall = mg / ng
            out.append(0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall))
        return out

    def band_miou(self, i: int) -> float | None:
        value = miou_of(self._band_cm[i])
        return None if np.isnan(value) else value

    def to_json(self, class_names: list[str]) -> dict:
        def block(values):
            kept = [v for v in values if v is not None]
            return {"mean": float(np.mean(kept)) if kept else None, "per_class": dict(zip(class_names, values))}

        edges = list(self.bands[1:]) + [None]
        return {
            "boundary_iou": {"dilation_ratio": self.ratio, **block(self.boundary_iou())},
            "boundary_f": {str(t): block(self.boundary_f(i)) for i, t in enumerate(self.tolerances)},
            "boundary_f_mode": self.f_mode,
            "distance_bands": [{"from": lo, "to": hi, "miou": self.band_miou(i)}
                               for i, (lo, hi) in enumerate(zip(self.bands, edges))],
        }


def _count(labels: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
    """Pixels of ``mask`` per class of ``labels`` (``K`` int64; labels >= K are not counted)."""
    return bin_counts(torch.where(mask, labels, k), k + 1)[:k]


def _reached_at(edge: float) -> int:
    """The least squared integer distance ``n`` whose float32 distance ``sqrt(n)`` is at least the band edge (a
    float32 distance transform compared with float32 edges, as the definition's reference does)."""
    target = np.float32(edge)
    n = max(0, math.ceil(edge * edge) - 2)
    while np.sqrt(np.float32(n)) < target:
        n += 1
    return n
