"""``scrnet.Segmenter``: the Python twin of ``scrnet predict``.

    seg = scrnet.Segmenter("hf://org/name")          # or a checkpoint file, or a published folder
    result = seg("street.jpg")                      # a path, a PIL image or an RGB uint8 NumPy array
    result.labels                                    # H x W class indices at the image's resolution
    seg(image, probabilities=True, overlay=True, offsets=True)

The stored input normalisation and eval protocol (resize, whole/slide, multi-scale + flip) are applied as at
evaluation; nothing is normalised or post-processed by hand.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.io import read_image
from ..loading import LoadedCheckpoint
from ..pretrained import from_pretrained
from ..runtime import resolve_device
from .predict import Predictor


@dataclass
class SegmentationResult:
    labels: np.ndarray  # H x W uint8 class indices (train ids), at the input's resolution
    class_names: list[str]
    probabilities: np.ndarray | None = None  # K x H x W float32 softmax probabilities (on request)
    overlay: np.ndarray | None = None  # H x W x 3 uint8: the palette blended over the image (on request)
    offsets: np.ndarray | None = None  # 2 x H x W float32: the finest SRM step's offsets, in input pixels


def as_rgb(image) -> np.ndarray:
    """A path, PIL image or NumPy array as RGB uint8 ``H x W x 3`` (grayscale replicated, alpha dropped)."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image, without importing PIL for the check
        return np.asarray(image.convert("RGB"))
    if not isinstance(image, np.ndarray):
        raise TypeError(f"expected a path, a PIL image or a NumPy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (0..255), got {image.dtype}; convert with "
                         f"(x * 255).round().astype(np.uint8) if it holds 0..1 values")
    if image.ndim == 2:
        return np.ascontiguousarray(np.repeat(image[..., None], 3, axis=2))
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 RGB (or H x W, H x W x 4) array, got shape {image.shape}")
    return np.ascontiguousarray(image[..., :3])


class Segmenter:
    """A model ready to segment images (see the module docstring)."""

    def __init__(self, source: str | Path | LoadedCheckpoint, device: str = "auto", revision: str | None = None):
        self.device = resolve_device(device)
        self.loaded = source if isinstance(source, LoadedCheckpoint) else from_pretrained(source, revision)
        self.predictor = Predictor(self.loaded, self.device)

    @property
    def class_names(self) -> list[str]:
        return self.loaded.class_names

    @torch.no_grad()
    def __call__(self, image, probabilities: bool = False, overlay: bool = False,
                 offsets: bool = False) -> SegmentationResult:
        rgb = as_rgb(image)
        scores = self.predictor.scores(rgb)
        labels = scores.argmax(1)[0].to(torch.uint8).cpu().numpy()
        result = SegmentationResult(labels, self.class_names)
        if probabilities:
            probs = scores.float() if self.loaded.config.eval.tta else scores.float().softmax(1)
            result.probabilities = probs[0].cpu().numpy()
        if overlay:
            result.overlay = self.predictor.render(rgb, labels, "overlay")
        if offsets:
            result.offsets = self.predictor.offsets(rgb)
        return result
