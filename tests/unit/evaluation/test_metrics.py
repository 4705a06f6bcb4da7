"""Confusion matrix and BIoU*: by hand, against the OpenCV oracle."""

import math

import numpy as np
import pytest
import torch

from scrnet.evaluation.boundary import BIoUStar
from scrnet.evaluation.metrics import ConfusionMatrix


def test_confusion_matrix_miou_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 255, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 1])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = cm.iou()  # class 0: 1/(2+2-1); class 1: 2/(2+3-2); class 2: 0/(1+0-0); class 3: absent and never predicted
    assert iou[0] == pytest.approx(1 / 3) and iou[1] == pytest.approx(2 / 3) and iou[2] == 0.0 and iou[3] is None
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    cm.update(torch.tensor([0]), torch.tensor([7]))  # recorded on the device, raised when the matrix is read
    with pytest.raises(ValueError, match=r"labels outside 0..3 .*\[7\]"):
        cm.miou()
    assert math.isnan(ConfusionMatrix(2).miou())


def test_boundary_iou_by_hand():
    target = np.zeros((10, 10), np.uint8)
    target[2:8, 2:8] = 1  # a 6x6 square: with width 1 its boundary band is the 20-pixel ring
    pred = np.zeros((10, 10), np.uint8)
    pred[2:8, 3:9] = 1  # the same square one pixel to the right
    b = BIoUStar(2, width=1)
    b.update(pred, target)
    ring_t = {(y, x) for y in range(2, 8) for x in range(2, 8) if y in (2, 7) or x in (2, 7)}
    ring_p = {(y, x + 1) for y, x in ring_t}
    assert b.inter[1] == len(ring_t & ring_p) and b.union[1] == len(ring_t | ring_p)
    # class 0: the image edge is not a contour, so its band is the ring just outside each square
    assert b.per_class()[1] == pytest.approx(len(ring_t & ring_p) / len(ring_t | ring_p))
    b2 = BIoUStar(2, width=1)
    b2.update(target, target)
    assert b2.per_class() == [1.0, 1.0]


def test_boundary_iou_ignores_255_and_skips_absent_classes():
    target = np.zeros((6, 6), np.uint8)
    target[:, 3:] = 1
    target[0] = 255  # an ignored row: its edge with the labelled rows is not a contour
    pred = target.copy()
    pred[0] = np.array([1, 1, 1, 0, 0, 0])  # anything may be predicted under ignored pixels
    b = BIoUStar(3, width=1)
    b.update(pred, target)
    assert b.per_class() == [1.0, 1.0, None]
    assert b.union[0] == 5  # column 2, rows 1-5: the only real contour of class 0


def blocky(h, w, k, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, k, (h // 4, w // 4))
    m = np.kron(small, np.ones((4, 4), np.int64)).astype(np.uint8)
    noise = rng.random((h, w)) < 0.02
    m[noise] = rng.integers(0, k, noise.sum())
    return m


@pytest.mark.parametrize("width", [1, 3, 6])
@pytest.mark.parametrize("seed", range(4))
def test_biou_star_equals_the_opencv_oracle(width, seed):
    from boundary_oracle import biou_star_counts

    target, pred = blocky(64, 96, 6, seed), blocky(64, 96, 6, seed + 10).astype(np.int64)
    target[:10] = 255
    target[20:30, 40:50] = 255
    if seed % 2:
        pred[np.random.default_rng(seed).random(pred.shape) < 0.03] = 9  # labels outside the classes
    b = BIoUStar(6, width)
    b.update(torch.from_numpy(pred), torch.from_numpy(target))
    expected = biou_star_counts(pred, target, 6, width)
    assert expected[1].sum() > 0
    assert (b.inter == expected[0]).all() and (b.union == expected[1]).all()


def test_confusion_matrix_equals_bincount_and_defers_the_label_check():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 40, 40), generator=g)
    target[:, :5] = 255
    pred = torch.randint(0, 5, (3, 40, 40), generator=g)
    cm = ConfusionMatrix(5)
    cm.update(pred, target)
    keep = target != 255
    expected = torch.bincount(target[keep] * 5 + pred[keep], minlength=25).view(5, 5)
    assert torch.equal(cm.matrix, expected)
