"""The backbone contract every encoder in SCRNet follows.

A backbone maps ``B x 3 x H x W`` (H and W multiples of 32) to a list of four feature maps at strides 4, 8, 16
and 32, whose channel counts it declares in ``channels``. The input normalisation its weights expect
(``mean``/``std`` on 0..1 RGB) is declared next to the weights, in ``BackboneSpec.normalization``.
"""

from dataclasses import dataclass

import torch
from torch import nn

STRIDES = (4, 8, 16, 32)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Normalization:
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD


class Backbone(nn.Module):
    """Base class: subclasses set ``channels`` (four ints) and implement ``forward`` returning four maps."""

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = STRIDES

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError
