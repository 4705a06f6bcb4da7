"""Whole, slide and multi-scale + flip inference."""

import pytest
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


def test_batched_windows_give_the_one_at_a_time_logits():
    torch.manual_seed(0)
    model = ContextModel().eval()
    x = torch.randn(2, 3, 50, 70)  # two images: each window's rows of the batch go back to their own image
    with torch.no_grad():
        one = infer_slide(model, x, (50, 70), (20, 30), (15, 20), 4)
        for batch in (2, 4, 9, 100):  # 9 windows: a partial last chunk, all in one pass, more than there are
            torch.testing.assert_close(infer_slide(model, x, (50, 70), (20, 30), (15, 20), 4, batch), one,
                                       rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(infer(model, x, (50, 70), "slide", (20, 30), (15, 20), 4, window_batch=3), one,
                                   rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="window_batch must be >= 1"):
        infer_slide(model, x, (50, 70), (20, 30), (15, 20), 4, 0)


def test_a_window_batch_below_one_is_a_config_error():
    from scrnet.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="eval.window_batch must be >= 1"):
        load_config(None, ["eval.window_batch=0"])
