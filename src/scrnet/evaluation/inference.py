"""Inference modes. Whole image: the network takes any size; logits are resized to the label's resolution."""

import torch
import torch.nn.functional as F


def infer_whole(model: torch.nn.Module, image: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Logits ``B x K x out_size`` for a normalised batch ``B x 3 x h x w`` (bilinear resize when sizes differ)."""
    logits = model(image)
    if tuple(logits.shape[-2:]) != tuple(out_size):
        logits = F.interpolate(logits, size=out_size, mode="bilinear", align_corners=False)
    return logits
