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
    """Base class: subclasses set ``channels`` (four ints), implement ``forward`` returning four maps and
    ``stages`` naming their stem and four stages (what :meth:`freeze` freezes)."""

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = STRIDES
    frozen_stages: int = -1

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def stages(self) -> list[list[nn.Module]]:  # pragma: no cover - interface
        """Five lists of modules: the stem, then the stages ending at strides 4, 8, 16 and 32."""
        raise NotImplementedError

    def freeze(self, frozen_stages: int) -> None:
        """Freeze the stem and the first ``frozen_stages`` stages (mmsegmentation's ``frozen_stages``: -1 none, 0
        the stem, 4 the whole backbone): their parameters stop requiring gradients and their modules stay in eval
        mode when the network trains, so BatchNorm statistics (and drop-path) are frozen too."""
        if not -1 <= frozen_stages <= 4:
            raise ValueError(f"frozen_stages must be -1..4, got {frozen_stages}")
        self.frozen_stages = frozen_stages
        for module in self._frozen_modules():
            for p in module.parameters():
                p.requires_grad_(False)
        self.train(self.training)

    def _frozen_modules(self) -> list[nn.Module]:
        return [m for stage in self.stages()[:self.frozen_stages + 1] for m in stage]

    def train(self, mode: bool = True) -> "Backbone":
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        return self
