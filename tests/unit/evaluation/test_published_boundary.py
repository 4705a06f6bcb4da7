"""The published boundary metrics (tensor code): hand-computed cases, direct NumPy transcriptions of each definition
(no OpenCV: loops over pixels and explicit distances) on small random masks, and equal integer counts with the
per-class NumPy/OpenCV oracle (``tests/boundary_oracle.py``, the former implementation) on larger ones, through
both of the F-score's search paths."""

import math

import numpy as np
import pytest
import torch
from boundary_oracle import PublishedBoundaryMetrics as Oracle

import scrnet.evaluation.published_boundary as published
from scrnet.evaluation.published_boundary import PublishedBoundaryMetrics, dilation_pixels

IGNORE = 255


# ----------------------------------------------------------------------------------- direct transcriptions
def ref_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixels of ``mask`` within chessboard distance d of a non-mask pixel, outside the image counting as
    non-mask (the reference API pads with zeros and erodes d times with a 3x3 square)."""
    h, w = mask.shape
    padded = np.zeros((h + 2 * d, w + 2 * d), bool)
    padded[d:d + h, d:d + w] = mask
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not padded[y:y + 2 * d + 1, x:x + 2 * d + 1].all():
                out[y, x] = True
    return out


def ref_contour(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a non-mask pixel among their 8 neighbours inside the image."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if mask[y, x] and not mask[max(y - 1, 0):y + 2, max(x - 1, 0):x + 2].all():
                out[y, x] = True
    return out


def ref_matched(a: np.ndarray, b: np.ndarray, tol: float) -> int:
    """Pixels of ``a`` with a pixel of ``b`` within Euclidean distance ``tol``."""
    pts = np.argwhere(b)
    if len(pts) == 0:
        return 0
    return int(sum(np.min(np.hypot(*(pts - p).T)) <= tol for p in np.argwhere(a)))


def reference(pred: np.ndarray, target: np.ndarray, k: int, ratio: float, tols, bands):
    valid = target != IGNORE
    d = max(1, round(ratio * math.hypot(*target.shape)))
    inter, union = np.zeros(k), np.zeros(k)
    f = np.zeros((len(tols), 4, k))
    for c in range(k):
        g, p = target == c, (pred == c) & valid
        gb, pb = ref_band(g, d), ref_band(p, d) & valid
        inter[c], union[c] = (gb & pb).sum(), (gb | pb).sum()
        gc, pc = ref_contour(g), ref_contour(p) & valid
        for i, t in enumerate(tols):
            f[i, :, c] = ref_matched(pc, gc, t), pc.sum(), ref_matched(gc, pc, t), gc.sum()
    # distance of every pixel to the nearest pixel of a pair of 4-neighbours with different valid labels
    h, w = target.shape
    edge = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            for dy, dx in ((0, 1), (1, 0)):
                yy, xx = y + dy, x + dx
                if yy < h and xx < w and valid[y, x] and valid[yy, xx] and target[y, x] != target[yy, xx]:
                    edge[y, x] = edge[yy, xx] = True
    pts = np.argwhere(edge)
    cms = np.zeros((len(bands), k, k))
    for y, x in np.argwhere(valid):
        dist = np.min(np.hypot(pts[:, 0] - y, pts[:, 1] - x)) if len(pts) else np.inf
        b = int(np.searchsorted(np.asarray(bands[1:], float), dist, side="right"))
        cms[b, target[y, x], pred[y, x]] += 1
    return inter, union, f, cms


def blocky(h, w, k, seed, ignore=True):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, k, (h // 4 + 1, w // 4 + 1))
    mask = np.kron(small, np.ones((4, 4), np.int64))[:h, :w]
    if ignore:
        mask[rng.random((h, w)) < 0.03] = IGNORE
    return mask


def transformed(*args):
    """The F-score by distance transforms (CUDA's default), on the CPU."""
    return PublishedBoundaryMetrics(*args, f_method="transform")


@pytest.mark.parametrize("implementation", [PublishedBoundaryMetrics, transformed, Oracle])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_equals_the_direct_transcription_on_random_masks(seed, implementation):
    k, ratio, tols, bands = 4, 0.05, (3, 1), (0, 2, 4)  # tolerances in any order
    target = blocky(23, 31, k, seed)
    other = blocky(23, 31, k, seed + 100, ignore=False)
    agree = np.random.default_rng(seed).random(target.shape) < 0.5
    pred = np.where(agree, target.clip(0, k - 1), other)  # partly right
    metrics = implementation(k, ratio, tols, bands)
    metrics.update(pred, target)
    inter, union, f, cms = reference(pred, target, k, ratio, tols, bands)
    assert np.array_equal(metrics.biou, np.stack([inter, union]).astype(np.int64))
    assert np.array_equal(metrics.f, f.astype(np.int64))
    assert np.array_equal(metrics.band_cm, cms.astype(np.int64))


def test_boundary_iou_by_hand():
    """A 6x6 image: class 1 is the 4x4 square at rows/cols 1-4, class 0 around it. d = 1 (ratio 0.1 x 8.49)."""
    target = np.zeros((6, 6), np.int64)
    target[1:5, 1:5] = 1
    assert dilation_pixels(target.shape, 0.1) == 1
    m = PublishedBoundaryMetrics(2, 0.1, (1,), (0, 2))
    m.update(target, target)
    assert m.boundary_iou() == [1.0, 1.0]
    # class 1's band: the square's 12-pixel ring; class 0 (the frame, edge is a contour): all of its 20 pixels
    assert m.biou[1].tolist() == [20, 12]
    shifted = np.zeros((6, 6), np.int64)
    shifted[1:5, 2:6] = 1  # the square moved one pixel right
    m = PublishedBoundaryMetrics(2, 0.1, (1,), (0, 2))
    m.update(shifted, target)
    # ground-truth band: the ring at cols 1-4 (12 px); predicted band: the square at cols 2-5 touches the image
    # edge (a contour), so all but (2,3), (2,4), (3,3), (3,4) (12 px); common: rows 1 and 4, cols 2-4 (6 px)
    assert m.biou[:, 1].tolist() == [6, 18]


def test_boundary_f_by_hand():
    """Vertical edge at column 3 in ground truth, at column 4 in the prediction: contours one pixel apart."""
    target = np.zeros((8, 8), np.int64)
    target[:, 3:] = 1
    pred = np.zeros((8, 8), np.int64)
    pred[:, 4:] = 1
    m = PublishedBoundaryMetrics(2, 0.02, (0, 1), (0, 2))
    m.update(pred, target)
    f0, f1 = m.boundary_f(0), m.boundary_f(1)
    assert f1 == [1.0, 1.0]  # within one pixel, everything matches
    # at tolerance 0 (exact), class 0's contour: column 2 (gt) vs column 3 (pred): no match
    assert f0 == [0.0, 0.0]
    m = PublishedBoundaryMetrics(3, 0.02, (3,), (0, 2))
    m.update(pred, target)
    assert m.boundary_f(0)[2] is None  # class 2 is in neither: None, not in the mean
    assert m.to_json(["a", "b", "c"])["boundary_f"]["3"]["mean"] == 1.0


def test_distance_bands_by_hand():
    """One vertical edge between columns 3 and 4; a prediction wrong exactly on column 0."""
    target = np.zeros((4, 20), np.int64)
    target[:, 4:] = 1
    pred = target.copy()
    pred[:, 0] = 1  # column 0 is 3 px from the boundary pixel at column 3: band 2-4
    m = PublishedBoundaryMetrics(2, 0.02, (3,), (0, 2, 4, 8, 16))
    m.update(pred, target)
    bands = m.to_json(["a", "b"])["distance_bands"]
    assert [(b["from"], b["to"]) for b in bands] == [(0, 2), (2, 4), (4, 8), (8, 16), (16, None)]
    assert bands[0]["miou"] == 1.0 and bands[2]["miou"] == 1.0  # columns 2-5 and beyond are right
    # band 2-4 holds columns 0, 1 (class 0: 4 right, 4 wrong) and 6, 7 (class 1, right): IoU 4/8 and 8/12
    assert bands[1]["miou"] == pytest.approx((4 / 8 + 8 / 12) / 2)


def test_ignored_pixels_count_nowhere():
    target = np.zeros((10, 10), np.int64)
    target[:, 5:] = 1
    target[0] = IGNORE
    pred = target.copy()
    pred[0] = 1  # whatever is predicted on ignored pixels
    a = PublishedBoundaryMetrics(2, 0.1, (3,), (0, 2))
    a.update(pred, target)
    pred2 = pred.copy()
    pred2[0] = 0
    b = PublishedBoundaryMetrics(2, 0.1, (3,), (0, 2))
    b.update(pred2, target)
    assert np.array_equal(a.biou, b.biou) and np.array_equal(a.f, b.f) and np.array_equal(a.band_cm, b.band_cm)


# ------------------------------------------------------------------------------------- against the OpenCV oracle
def random_case(seed: int):
    """Blocks of 1..12 pixels, 2..7 classes, no / some / many ignored pixels, images from 1 to 120 pixels a side;
    predictions partly right, some out of the class range."""
    rng = np.random.default_rng(seed)
    h, w = (int(v) for v in rng.integers(1, 121, 2))
    k, size = int(rng.integers(2, 8)), int(rng.integers(1, 13))

    def blocks(s):
        small = np.random.default_rng(s).integers(0, k, (h // size + 1, w // size + 1))
        return np.kron(small, np.ones((size, size), np.int64))[:h, :w]

    target = blocks(seed)
    target[rng.random((h, w)) < [0.0, 0.03, 0.3][seed % 3]] = IGNORE
    pred = np.where(rng.random((h, w)) < 0.6, target.clip(0, k - 1), blocks(seed + 999))
    if seed % 5 == 0:
        pred[rng.random((h, w)) < 0.05] = k + 3
    return pred, target, k, float(rng.choice([0.005, 0.02, 0.1]))


@pytest.mark.parametrize("search", ["pairs", "dense", "pairs in chunks of 2000", "transform",
                                    "transform one class at a time"])
def test_equals_the_opencv_oracle_on_random_masks(search, monkeypatch):
    method = "transform" if search.startswith("transform") else "search"
    if search.endswith("at a time"):
        monkeypatch.setattr(published, "TRANSFORM_PIXELS", 1)
    if search == "dense":  # every image compares shifted label maps
        monkeypatch.setattr(published, "DENSE_QUERIES_PER_PIXEL", 0.0)
    else:
        monkeypatch.setattr(published, "DENSE_QUERIES_PER_PIXEL", float("inf"))
        monkeypatch.setattr(published, "DENSE_PAIRS_PER_PIXEL", float("inf"))
    if search.endswith("2000"):
        monkeypatch.setattr(published, "MAX_PAIRS", 2000)
    for seed in range(30):
        pred, target, k, ratio = random_case(seed)
        args = (k, ratio, (0, 1, 3, 5, 9, 12), (0, 2, 2.5, 4, 8, 16))
        ours, oracle = PublishedBoundaryMetrics(*args, f_method=method), Oracle(*args)
        ours.update(torch.from_numpy(pred), torch.from_numpy(target))
        oracle.update(pred, target)
        for name in ("biou", "f", "band_cm"):
            assert np.array_equal(getattr(ours, name), getattr(oracle, name)), (seed, name, target.shape)


def test_a_street_scene_at_full_size_equals_the_oracle():
    """256x512 with the default settings, a prediction from another scene (the benchmark's street case), a patch
    of ignored pixels."""
    from scrnet.data.synthetic import render_scene

    target = render_scene(256, 512, np.random.default_rng(1))[1].astype(np.int64)
    pred = render_scene(256, 512, np.random.default_rng(0))[1].astype(np.int64)
    target[100:120, 200:260] = IGNORE
    ours, oracle = PublishedBoundaryMetrics(9), Oracle(9)
    ours.update(pred, target)
    oracle.update(pred, target)
    for name in ("biou", "f", "band_cm"):
        assert np.array_equal(getattr(ours, name), getattr(oracle, name)), name
    assert ours.to_json(list("abcdefghi")) == oracle.to_json(list("abcdefghi"))


def test_a_batch_counts_as_its_images():
    target = blocky(40, 50, 5, 7)
    preds = torch.stack([torch.from_numpy(blocky(40, 50, 5, s, ignore=False)) for s in (8, 9)])
    batch, single = PublishedBoundaryMetrics(5, 0.1), PublishedBoundaryMetrics(5, 0.1)
    batch.update(preds, torch.from_numpy(np.stack([target, target])))
    for p in preds:
        single.update(p, torch.from_numpy(target))
    for name in ("biou", "f", "band_cm"):
        assert np.array_equal(getattr(batch, name), getattr(single, name))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="ignore index 3 is one of the 5 classes"):
        PublishedBoundaryMetrics(5, ignore_index=3)
    with pytest.raises(ValueError, match="prediction shape"):
        PublishedBoundaryMetrics(5).update(torch.zeros(4, 5), torch.zeros(5, 4))


@pytest.mark.parametrize("d", [1, 3, 8])
@pytest.mark.parametrize("with_neutral", [False, True])
def test_other_label_within_is_the_naive_window_test_on_both_backends(d, with_neutral):
    rng = np.random.default_rng(d)
    labels = torch.from_numpy(np.kron(rng.integers(0, 4, (9, 12)), np.ones((3, 3), np.int64)))
    neutral = torch.from_numpy(rng.random(labels.shape) < 0.2) if with_neutral else None
    h, w = labels.shape
    big = labels.clone()
    big[0, 0] = 70000  # beyond 16 bits: the OpenCV backend hands over to the torch one
    for case in (labels, big):
        naive = torch.zeros(h, w, dtype=torch.bool)
        for y in range(h):
            for x in range(w):
                for yy in range(max(0, y - d), min(h, y + d + 1)):
                    for xx in range(max(0, x - d), min(w, x + d + 1)):
                        if (neutral is None or not neutral[yy, xx]) and case[yy, xx] != case[y, x]:
                            naive[y, x] = True
        for backend in ("opencv", "torch"):
            assert torch.equal(published.other_label_within(case, d, neutral, backend), naive), backend


@pytest.mark.parametrize("shape, horizontal", [((3, 700), False), ((700, 64), True)])
def test_band_edges_above_255_pixels_equal_a_brute_force_distance(shape, horizontal):
    """Regression: the vertical distance was counted in uint8, so edges above 255 px wrapped around. Edges
    (0, 2, 300): a 3 x 700 map with one vertical boundary put no pixel in the 300+ band, and a 700 x 64 map with one
    horizontal boundary 33,536 where 6,400 belong."""
    h, w = shape
    labels = torch.zeros(shape, dtype=torch.uint8)
    if horizontal:
        labels[h // 2:] = 1
    else:
        labels[:, w // 2:] = 1
    edges = published.edge_map(labels, torch.ones(shape, dtype=torch.bool))
    bands = (0, 2, 300)
    edges_sq = [published._reached_at(t) for t in bands[1:]]
    count = published.distance_band(edges, edges_sq)
    ys, xs = np.nonzero(edges.numpy())
    yy, xx = np.mgrid[:h, :w]
    d2 = ((yy.reshape(-1, 1) - ys) ** 2 + (xx.reshape(-1, 1) - xs) ** 2).min(1).reshape(h, w)
    expected = sum((d2 >= m).astype(np.int64) for m in edges_sq)
    assert np.array_equal(count.numpy().astype(np.int64), expected)
    far = int((expected == 2).sum())
    assert far == 100 * (64 if horizontal else 3)  # 50 rows (columns) on each side lie 300 px or more away
    metrics = PublishedBoundaryMetrics(2, bands=bands, tolerances=())
    metrics.update(labels[None].long(), labels[None].long())
    assert int(metrics.band_cm[2].sum()) == far


# ------------------------------------------------------------------- oracles from the published descriptions
def published_cases(count: int):
    """Small random label maps: blocks of classes, ignored pixels, a prediction partly right and partly labels
    outside the classes."""
    for seed in range(count):
        rng = np.random.default_rng(1000 + seed)
        k = int(rng.integers(2, 5))
        h, w = int(rng.integers(12, 30)), int(rng.integers(12, 30))
        target = blocky(h, w, k, seed)
        pred = np.where(rng.random((h, w)) < 0.6, target.clip(0, k - 1), blocky(h, w, k, seed + 50, ignore=False))
        if seed % 4 == 0:
            pred[rng.random((h, w)) < 0.05] = k + 2
        if seed % 5 == 0:
            target[:] = np.where(target == IGNORE, IGNORE, 0)  # one class only: the others absent from the truth
        yield seed, k, pred, target


def test_boundary_iou_equals_the_published_mask_to_boundary():
    from published_oracles import boundary_iou_counts

    for seed, k, pred, target in published_cases(25):
        ratio = [0.01, 0.05, 0.15][seed % 3]
        ours = PublishedBoundaryMetrics(k, ratio, (), (0,))
        ours.update(torch.from_numpy(pred), torch.from_numpy(target))
        assert np.array_equal(ours.biou, boundary_iou_counts([pred], [target], k, ratio)), seed


@pytest.mark.parametrize("tolerances", [(0, 1, 2), (3, 1)])
def test_per_image_boundary_f_equals_the_published_description(tolerances):
    from published_oracles import per_image_boundary_f

    cases = list(published_cases(12))
    for k in sorted({c[1] for c in cases}):
        same_k = [c for c in cases if c[1] == k]
        ours = PublishedBoundaryMetrics(k, 0.02, tolerances, (0,), f_mode="per_image")
        for _, _, pred, target in same_k:
            ours.update(torch.from_numpy(pred), torch.from_numpy(target))
        expected = per_image_boundary_f([c[2] for c in same_k], [c[3] for c in same_k], k, tolerances)
        got = np.array([ours.boundary_f(i) for i in range(len(tolerances))])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
        summary = ours.to_json([str(c) for c in range(k)])
        assert summary["boundary_f_mode"] == "per_image"
        assert summary["boundary_f"][str(tolerances[0])]["mean"] == pytest.approx(expected[0].mean(), abs=1e-12)


def test_per_image_boundary_f_by_hand():
    """A 1-pixel shift of a square: within 1 px, F = 1; at 0 px the shifted sides miss. seg2bmap puts a vertical
    edge on its west pixel: the square's left boundary lies outside it, its right boundary inside."""
    target = np.zeros((10, 10), np.int64)
    target[3:7, 3:7] = 1
    pred = np.roll(target, 1, axis=1)
    m = PublishedBoundaryMetrics(2, 0.02, (0, 1), (0,), f_mode="per_image")
    m.update(torch.from_numpy(pred), torch.from_numpy(target))
    assert m.boundary_f(1) == [1.0, 1.0]
    f0 = m.boundary_f(0)
    assert 0 < f0[1] < 1 and f0 == [f0[1], f0[1]]  # background and square share every boundary pixel
