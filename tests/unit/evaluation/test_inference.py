"""Whole, slide and multi-scale + flip inference."""

import torch

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
