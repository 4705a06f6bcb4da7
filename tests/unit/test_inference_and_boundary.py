import numpy as np
import pytest
import torch

from scrnet.config import EvalConfig
from scrnet.evaluation.boundary import BoundaryIoU
from scrnet.evaluation.inference import infer, infer_slide, infer_whole, window_starts


class PixelModel(torch.nn.Module):
    """A 1x1 conv: no context, so it is translation- and flip-equivariant (slide and flip TTA must not change it)."""

    def __init__(self, k=4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, k, 1)

    def forward(self, x):
        return self.conv(x)


class ContextModel(torch.nn.Module):
    def __init__(self, k=4):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, k, 7, padding=3)

    def forward(self, x):
        return self.conv(x)


def test_window_starts_cover_the_image():
    assert window_starts(100, 40, 30) == [0, 30, 60]
    assert window_starts(100, 100, 30) == [0] and window_starts(50, 64, 32) == [0]
    assert window_starts(1024, 512, 341) == [0, 341, 512]


def test_slide_equals_whole_when_the_window_covers_the_image():
    model = ContextModel().eval()
    x = torch.randn(1, 3, 37, 53)
    with torch.no_grad():
        torch.testing.assert_close(infer_slide(model, x, (37, 53), (64, 64), (32, 32), 4),
                                   infer_whole(model, x, (37, 53)))


def test_slide_averages_overlapping_windows():
    model = PixelModel().eval()
    x = torch.randn(1, 3, 50, 70)
    with torch.no_grad():
        torch.testing.assert_close(infer_slide(model, x, (50, 70), (20, 30), (15, 20), 4), model(x))
        context = ContextModel().eval()
        slid = infer_slide(context, x, (50, 70), (20, 30), (15, 20), 4)
        by_hand = torch.zeros(1, 4, 50, 70)
        count = torch.zeros(1, 1, 50, 70)
        for y in (0, 15, 30):
            for x0 in (0, 20, 40):
                by_hand[:, :, y:y + 20, x0:x0 + 30] += context(x[:, :, y:y + 20, x0:x0 + 30])
                count[:, :, y:y + 20, x0:x0 + 30] += 1
        torch.testing.assert_close(slid, by_hand / count)


def test_flip_tta_of_a_flip_equivariant_model_equals_plain_inference():
    model = PixelModel().eval()
    x = torch.randn(2, 3, 24, 40)
    with torch.no_grad():
        plain = model(x).softmax(1)
        torch.testing.assert_close(infer(model, x, (24, 40), scales=(1.0,), flip=True), plain)
        assert not torch.allclose(infer(ContextModel().eval(), x, (24, 40), scales=(1.0,), flip=True),
                                  ContextModel().eval()(x).softmax(1))


def test_multiscale_averages_probabilities_at_the_output_size():
    model = ContextModel().eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        got = infer(model, x, (64, 96), scales=(0.5, 1.0), flip=False)
        half = torch.nn.functional.interpolate(x, size=(16, 24), mode="bilinear", align_corners=False)
        up = lambda t: torch.nn.functional.interpolate(t, size=(64, 96), mode="bilinear", align_corners=False)  # noqa
        expected = (up(model(half)).softmax(1) + up(model(x)).softmax(1)) / 2
    torch.testing.assert_close(got, expected)
    assert torch.allclose(got.sum(1), torch.ones(1, 64, 96))


def test_boundary_iou_by_hand():
    target = np.zeros((10, 10), np.uint8)
    target[2:8, 2:8] = 1  # a 6x6 square: with width 1 its boundary band is the 20-pixel ring
    pred = np.zeros((10, 10), np.uint8)
    pred[2:8, 3:9] = 1  # the same square one pixel to the right
    b = BoundaryIoU(2, width=1)
    b.update(pred, target)
    ring_t = {(y, x) for y in range(2, 8) for x in range(2, 8) if y in (2, 7) or x in (2, 7)}
    ring_p = {(y, x + 1) for y, x in ring_t}
    assert b.inter[1] == len(ring_t & ring_p) and b.union[1] == len(ring_t | ring_p)
    # class 0: the image edge is not a contour, so its band is the ring just outside each square
    assert b.per_class()[1] == pytest.approx(len(ring_t & ring_p) / len(ring_t | ring_p))
    b2 = BoundaryIoU(2, width=1)
    b2.update(target, target)
    assert b2.per_class() == [1.0, 1.0]


def test_boundary_iou_ignores_255_and_skips_absent_classes():
    target = np.zeros((6, 6), np.uint8)
    target[:, 3:] = 1
    target[0] = 255  # an ignored row: its edge with the labelled rows is not a contour
    pred = target.copy()
    pred[0] = np.array([1, 1, 1, 0, 0, 0])  # anything may be predicted under ignored pixels
    b = BoundaryIoU(3, width=1)
    b.update(pred, target)
    assert b.per_class() == [1.0, 1.0, None]
    assert b.union[0] == 5  # column 2, rows 1-5: the only real contour of class 0


def test_eval_config_checks():
    with pytest.raises(ValueError, match="eval.mode must be one of"):
        EvalConfig(mode="tiles")
    with pytest.raises(ValueError, match=r"eval.stride must be two positive sizes"):
        EvalConfig(stride=[0, 10])
