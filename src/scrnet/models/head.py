"""The decoder head's fusion of its four C-channel maps at stride 4 (a choice the paper does not pin down)."""

from torch import nn

from .layers import ConvBNReLU

FUSIONS = ("conv3x3", "reduce1x1")


def build_fusion(kind: str, channels: int) -> nn.Module:
    """The head's fusion of the four C-channel maps (concatenated, 4C channels) to C channels at stride 4.

    ``conv3x3`` (default): one conv3x3-BN-ReLU over the concatenation (UPerNet's and SFNet's head; 36 C^2 MACs per
    pixel, 42% of ``scrnet_r18``'s compute). ``reduce1x1``: conv1x1-BN-ReLU to C, then conv3x3-BN-ReLU (13 C^2 per
    pixel); worse beyond noise in docs/ablations.md (-6.4 mIoU at the same width, -3.5 widened to the same compute)."""
    if kind == "conv3x3":
        return ConvBNReLU(4 * channels, channels, 3)
    if kind == "reduce1x1":
        return nn.Sequential(ConvBNReLU(4 * channels, channels, 1), ConvBNReLU(channels, channels, 3))
    raise ValueError(f"head fusion must be one of {FUSIONS}, got {kind!r}")
