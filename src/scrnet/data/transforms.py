"""Train and eval pipelines on ``H x W x 3`` RGB uint8 images and ``H x W`` uint8 train-id masks.

Train (mmsegmentation's recipe): random resize by a ratio of a base scale (aspect kept), random crop whose largest
class covers at most ``cat_max_ratio`` of the labelled pixels (up to 10 draws), horizontal flip, photometric
distortion (brightness, contrast, saturation, hue), pad (image 0, mask 255) to the crop size. Masks are always
resized with nearest neighbour, so they never take values outside the label set. Eval: optional resize keeping the
aspect ratio; the ground truth stays at its original resolution.

Both return ``3 x H x W`` uint8 images and ``H x W`` uint8 masks: a quarter (images) and an eighth (masks) of the
bytes of float32/int64 cross the workers' shared memory and the host-to-device copy. Normalisation and the cast to
float happen on the device, in :class:`Normalize`, with the mean/std the model was trained with.

Every random draw comes from the ``numpy.random.Generator`` passed in, so a sample is a function of its seed.
"""

from dataclasses import dataclass, field
from typing import Optional

import cv2
import numpy as np
import torch

from ..errors import ConfigError
from .source import IGNORE


@dataclass
class TrainTransformConfig:
    scale: list[int] = field(default_factory=lambda: [2048, 1024])  # base size as (long side, short side)
    ratio_range: list[float] = field(default_factory=lambda: [0.5, 2.0])  # resize ratio drawn uniformly
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])  # (height, width)
    cat_max_ratio: float = 0.75  # 1.0 disables the re-draw
    flip_prob: float = 0.5
    photometric: bool = True

    def __post_init__(self):
        def bad(key, value, expected):
            raise ConfigError(f"data.train.{key} must be {expected}, got {value!r}")

        if len(self.scale) != 2 or min(self.scale) <= 0:
            bad("scale", self.scale, "two positive sizes [long, short]")
        if len(self.ratio_range) != 2 or not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            bad("ratio_range", self.ratio_range, "[low, high] with 0 < low <= high")
        if len(self.crop_size) != 2 or min(self.crop_size) <= 0:
            bad("crop_size", self.crop_size, "two positive sizes [height, width]")
        if not 0 < self.cat_max_ratio <= 1:
            bad("cat_max_ratio", self.cat_max_ratio, "in (0, 1]")
        if not 0 <= self.flip_prob <= 1:
            bad("flip_prob", self.flip_prob, "in [0, 1]")


@dataclass
class EvalTransformConfig:
    scale: Optional[list[int]] = None  # resize to fit (long side, short side), aspect kept; None keeps the size


def fit_size(h: int, w: int, long_side: float, short_side: float) -> tuple[int, int]:
    """The size of an ``h x w`` image rescaled, aspect kept, to fit within ``long_side x short_side``."""
    s = min(long_side / max(h, w), short_side / min(h, w))
    return max(int(h * s + 0.5), 1), max(int(w * s + 0.5), 1)


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``H x W x 3`` -> uint8 ``3 x H x W`` (contiguous, so it pins and copies as one block)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


class Normalize:
    """``(x / 255 - mean) / std`` of uint8 ``B x 3 x H x W`` images, as float32, on whatever device they are on.

    ``mean``/``std`` (0..1 RGB) are required: they come from the run config, which takes them from the backbone's
    weights when the user sets none (an EfficientNet-Lite backbone does not use ImageNet's statistics).
    """

    def __init__(self, mean, std):
        if mean is None or std is None or len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"input normalisation needs 3 means and 3 positive stds, got mean={mean}, std={std}")
        self.mean, self.std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
        self._cache: dict = {}

    def _constants(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        if device not in self._cache:
            scale = torch.tensor([1.0 / (255.0 * s) for s in self.std], device=device).view(1, 3, 1, 1)
            shift = torch.tensor([m / s for m, s in zip(self.mean, self.std)], device=device).view(1, 3, 1, 1)
            self._cache[device] = (scale, shift)
        return self._cache[device]

    def __call__(self, images: torch.Tensor, memory_format: torch.memory_format = torch.contiguous_format
                 ) -> torch.Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(0)
        if images.dim() != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
            raise ValueError(f"expected uint8 images B x 3 x H x W (RGB, 0..255), got {images.dtype} of shape "
                             f"{tuple(images.shape)}")
        scale, shift = self._constants(images.device)
        out = torch.empty(images.shape, dtype=torch.float32, device=images.device, memory_format=memory_format)
        return torch.sub(torch.mul(images, scale, out=out), shift, out=out)


def random_crop_box(mask: np.ndarray, crop_h: int, crop_w: int, cat_max_ratio: float,
                    rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner of a crop; re-drawn up to 10 times while one class covers >= cat_max_ratio of the crop."""
    h, w = mask.shape
    for _ in range(10):
        y = int(rng.integers(0, max(h - crop_h, 0) + 1))
        x = int(rng.integers(0, max(w - crop_w, 0) + 1))
        if cat_max_ratio >= 1.0:
            break
        counts = np.bincount(mask[y:y + crop_h, x:x + crop_w].ravel(), minlength=256)[:IGNORE]
        present = counts[counts > 0]
        if len(present) > 1 and present.max() / present.sum() < cat_max_ratio:
            break
    return y, x


def _affine_lut(alpha: float, beta: float) -> np.ndarray:
    return np.clip(np.arange(256, dtype=np.float32) * alpha + beta, 0, 255).astype(np.uint8)


def photometric_distortion(image: np.ndarray, rng: np.random.Generator, brightness_delta: int = 32,
                           contrast: tuple[float, float] = (0.5, 1.5), saturation: tuple[float, float] = (0.5, 1.5),
                           hue_delta: int = 18) -> np.ndarray:
    """mmsegmentation's PhotoMetricDistortion: each step with probability 0.5, contrast before or after the
    colour steps at random, values clipped to 0..255 after each step (done with uint8 look-up tables)."""
    if rng.random() < 0.5:
        image = cv2.LUT(image, _affine_lut(1.0, float(rng.uniform(-brightness_delta, brightness_delta))))
    contrast_first = rng.random() < 0.5

    def apply_contrast(img):
        return cv2.LUT(img, _affine_lut(float(rng.uniform(*contrast)), 0.0)) if rng.random() < 0.5 else img

    if contrast_first:
        image = apply_contrast(image)
    do_sat, do_hue = rng.random() < 0.5, rng.random() < 0.5
    if do_sat or do_hue:
        hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV)  # 8-bit hue in 0..179
        if do_sat:
            hsv[..., 1] = cv2.LUT(hsv[..., 1], _affine_lut(float(rng.uniform(*saturation)), 0.0))
        if do_hue:
            shift = int(rng.integers(-hue_delta, hue_delta + 1))
            hsv[..., 0] = ((hsv[..., 0].astype(np.int16) + shift) % 180).astype(np.uint8)
        image = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
    if not contrast_first:
        image = apply_contrast(image)
    return image


class TrainTransform:
    def __init__(self, cfg: TrainTransformConfig):
        self.cfg = cfg

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator):
        cfg = self.cfg
        h, w = mask.shape
        ratio = float(rng.uniform(*cfg.ratio_range))
        nh, nw = fit_size(h, w, cfg.scale[0] * ratio, cfg.scale[1] * ratio)
        ch, cw = cfg.crop_size
        mask = cv2.resize(mask, (nw, nh), interpolation=cv2.INTER_NEAREST)
        y, x = random_crop_box(mask, ch, cw, cfg.cat_max_ratio, rng)
        mask = mask[y:y + ch, x:x + cw]
        image = resize_crop(image, (nh, nw), (y, x, mask.shape[0], mask.shape[1]))
        if rng.random() < cfg.flip_prob:
            image, mask = image[:, ::-1], mask[:, ::-1]
        if cfg.photometric:
            image = photometric_distortion(np.ascontiguousarray(image), rng)
        pad_h, pad_w = ch - mask.shape[0], cw - mask.shape[1]
        if pad_h > 0 or pad_w > 0:
            image = cv2.copyMakeBorder(np.ascontiguousarray(image), 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=0)
            mask = cv2.copyMakeBorder(np.ascontiguousarray(mask), 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                      value=IGNORE)
        return to_chw_uint8(image), torch.from_numpy(np.ascontiguousarray(mask))


def resize_crop(image: np.ndarray, size: tuple[int, int], box: tuple[int, int, int, int]) -> np.ndarray:
    """``cv2.resize(image, size)[y:y+h, x:x+w]`` computed from only the source pixels the crop needs.

    cv2's bilinear resize samples source position ``(i + 0.5) * scale - 0.5``; an affine warp with the same mapping
    restricted to the crop samples the same positions without resizing the whole image (values agree within 1 level:
    the two use different fixed-point rounding). At ratio 2 on a 2048x1024 image this avoids an 8-megapixel resize.
    """
    nh, nw = size
    y, x, h, w = box
    sy, sx = image.shape[0] / nh, image.shape[1] / nw
    matrix = np.array([[sx, 0, (x + 0.5) * sx - 0.5], [0, sy, (y + 0.5) * sy - 0.5]], dtype=np.float64)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


class EvalTransform:
    def __init__(self, cfg: EvalTransformConfig):
        self.cfg = cfg

    def __call__(self, image: np.ndarray, mask: np.ndarray, rng: np.random.Generator | None = None):
        if self.cfg.scale is not None:
            nh, nw = fit_size(*image.shape[:2], *self.cfg.scale)
            image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return to_chw_uint8(image), torch.from_numpy(np.ascontiguousarray(mask))
