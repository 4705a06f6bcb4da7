"""Inference modes: whole image, sliding window, and multi-scale + flip test-time augmentation.

All return per-pixel scores ``B x K x H_out x W_out`` at the requested output size (the label's resolution):
logits for whole and slide, averaged softmax probabilities for TTA (argmax is what is scored in every case).
"""

import torch
import torch.nn.functional as F

from ..config import EvalConfig


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def infer_whole(model: torch.nn.Module, image: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Logits ``B x K x out_size`` for a normalised batch ``B x 3 x h x w``."""
    return resize(model(image), out_size)


def window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window offsets covering ``0..length`` with the given stride; the last window ends at ``length``."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop, stride))
    return starts + [length - crop]


def infer_slide(model: torch.nn.Module, image: torch.Tensor, out_size: tuple[int, int], crop: tuple[int, int],
                stride: tuple[int, int], num_classes: int, window_batch: int = 1) -> torch.Tensor:
    """Sliding-window logits: windows of ``crop`` every ``stride`` pixels, logits averaged where windows overlap
    (a window larger than the image is the whole image: the network takes any size). ``window_batch`` windows go
    through the network together (its batch is the image batch times that); every window has the same size, and
    the result is the one-at-a-time result up to the rounding of batched kernels."""
    if window_batch < 1:
        raise ValueError(f"window_batch must be >= 1, got {window_batch}")
    b, _, h, w = image.shape
    ch, cw = min(crop[0], h), min(crop[1], w)
    boxes = [(y, x) for y in window_starts(h, crop[0], stride[0]) for x in window_starts(w, crop[1], stride[1])]
    total = image.new_zeros(b, num_classes, h, w, dtype=torch.float32)
    count = image.new_zeros(1, 1, h, w, dtype=torch.float32)
    for first in range(0, len(boxes), window_batch):
        chunk = boxes[first:first + window_batch]
        logits = model(torch.cat([image[:, :, y:y + ch, x:x + cw] for y, x in chunk])).float()
        for j, (y, x) in enumerate(chunk):
            total[:, :, y:y + ch, x:x + cw] += logits[j * b:(j + 1) * b]
            count[:, :, y:y + ch, x:x + cw] += 1
    return resize(total / count, out_size)


def infer(model: torch.nn.Module, image: torch.Tensor, out_size: tuple[int, int], mode: str = "whole",
          crop: tuple[int, int] = (1024, 1024), stride: tuple[int, int] = (768, 768), num_classes: int = 0,
          scales: tuple[float, ...] | None = None, flip: bool = False, window_batch: int = 1) -> torch.Tensor:
    """Whole or slide inference; with ``scales`` and/or ``flip``, softmax probabilities averaged over the image
    resized by each scale and (when ``flip``) its horizontal mirror, all brought to ``out_size``."""

    def run(x: torch.Tensor) -> torch.Tensor:
        if mode == "slide":
            return infer_slide(model, x, out_size, crop, stride, num_classes, window_batch)
        return infer_whole(model, x, out_size)

    if not scales and not flip:
        return run(image)
    h, w = image.shape[-2:]
    probs = None
    for scale in scales or (1.0,):
        x = image if scale == 1.0 else resize(image, (max(int(h * scale + 0.5), 1), max(int(w * scale + 0.5), 1)))
        views = [(x, False), (x.flip(-1), True)] if flip else [(x, False)]
        for view, flipped in views:
            p = run(view).float().softmax(1)
            p = p.flip(-1) if flipped else p
            probs = p if probs is None else probs + p
    return probs / (len(scales or (1.0,)) * (2 if flip else 1))


def infer_as_configured(model: torch.nn.Module, image: torch.Tensor, out_size: tuple[int, int], e: EvalConfig,
                        num_classes: int) -> torch.Tensor:
    """:func:`infer` with the mode, windows, window batch and test-time augmentation of an ``eval`` config: what
    eval, the report and predict run."""
    return infer(model, image, out_size, e.mode, tuple(e.crop_size), tuple(e.stride), num_classes,
                 tuple(e.scales) if e.tta else None, e.tta and e.flip, e.window_batch)
