"""Small building blocks shared by the decoder modules."""

from contextlib import nullcontext

import torch
from torch import nn


class ConvBNReLU(nn.Sequential):
    """``conv(k x k, no bias) -> BatchNorm -> ReLU`` with 'same' padding for odd kernels."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1):
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


# Device types without autocast that SCRNet runs on: ``meta`` (compute counting). A fixed set rather than a call to
# ``torch.amp.is_autocast_available`` inside forward: torch 2.11's Dynamo broke the graph at that call, and
# ``torch.compile`` then ran most of the network eagerly (measured on an H100).
NO_AUTOCAST_DEVICES = frozenset({"meta"})


def autocast_off(x: torch.Tensor):
    """A context in which autocast is off on ``x``'s device (for maths that must run in float32: SRM's sampling
    grid, CRM's affinities); a no-op on devices without autocast (``meta``, used to count compute)."""
    device = x.device.type
    return nullcontext() if device in NO_AUTOCAST_DEVICES else torch.autocast(device, enabled=False)
