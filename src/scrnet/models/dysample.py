"""DySample, a published light upsampler built on point sampling: a baseline mode for SRM (``srm.mode=dysample``).

Built from the description in Liu et al., "Learning to Upsample by Learning to Sample" (ICCV 2023,
arXiv 2308.15085), the "linear + pixel-shuffle" form at scale 2:

1. Offsets from the coarse map alone: a 1x1 conv of ``g`` to ``2 * groups * 4`` channels, times a scope factor:
   the static 0.25 (``scope="static"``), or ``0.5 * sigmoid(conv1x1(g))`` (``scope="dynamic"``, the scope conv
   zero-initialised so it starts at 0.25). Offsets are in pixels of the coarse map.
2. Pixel shuffle to the fine grid: ``2 * groups`` offset channels (all dx first, then all dy) per fine pixel.
3. The sampling positions are the fine pixel centres projected onto the coarse map (DySample's initial positions,
   i.e. bilinear upsampling's) plus the offsets; ``grid_sample`` of the coarse map, each of ``groups`` channel
   groups with its own offsets (bilinear, border padding, ``align_corners=False``).

The offset conv starts at normal(std=0.001), as in the paper's code. Unlike SRM, nothing of the high-resolution
backbone map guides the offsets: that is the difference SRM claims matters, and the point of this baseline.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import autocast_off
from .sampling import BilinearSampler, base_grid, normalized

DySampleScope = Literal["static", "dynamic"]
DYSAMPLE_SCOPES = ("static", "dynamic")


class DySample(nn.Module):
    """Upsamples ``g`` (``B x C x h x w``) by 2; returns the result and the mean offset field over groups
    (``B x 2 x 2h x 2w``, pixels of the fine grid, dx then dy). SCRNet pads its input to a multiple of 32, so every
    fine map is exactly twice its coarse map."""

    scale = 2

    def __init__(self, channels: int, groups: int = 4, scope: DySampleScope = "static"):
        super().__init__()
        if scope not in DYSAMPLE_SCOPES:
            raise ValueError(f"DySample scope must be one of {DYSAMPLE_SCOPES}, got {scope!r}")
        if channels % groups:
            raise ValueError(f"DySample groups ({groups}) must divide the decoder width ({channels})")
        self.groups = groups
        self.scope_kind = scope
        self.sampler = BilinearSampler()  # no parameters: names the sampling in exported graphs
        out = 2 * groups * self.scale ** 2
        self.offset = nn.Conv2d(channels, out, 1)
        nn.init.normal_(self.offset.weight, std=0.001)
        nn.init.zeros_(self.offset.bias)
        if scope == "dynamic":
            self.scope = nn.Conv2d(channels, out, 1)
            nn.init.zeros_(self.scope.weight)
            nn.init.zeros_(self.scope.bias)

    def forward(self, g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        off = self.offset(g)
        if self.scope_kind == "dynamic":
            off = off * self.scope(g).sigmoid() * 0.5
        else:
            off = off * 0.25
        b, c = g.shape[0], g.shape[1]
        with autocast_off(g):  # coordinates in float32 (see sampling.base_grid)
            off = F.pixel_shuffle(off.float(), self.scale) * self.scale  # B x 2G x H x W, fine pixels
            fine_h, fine_w = off.shape[2], off.shape[3]
            xs, ys = base_grid(off)
            width = xs[..., -1:] + 0.5
            height = ys[..., -1:, :] + 0.5
            gx = normalized(xs + off[:, :self.groups], width)  # B x G x H x W
            gy = normalized(ys + off[:, self.groups:], height)
            grid = torch.stack([gx, gy], dim=-1).flatten(0, 1)  # B*G x H x W x 2
            src = g.float().reshape(b * self.groups, c // self.groups, g.shape[2], g.shape[3])
            out = self.sampler(src, grid)
            out = out.reshape(b, c, fine_h, fine_w).to(g.dtype)
            mean_offsets = torch.stack([off[:, :self.groups].mean(1), off[:, self.groups:].mean(1)], dim=1)
        return out, mean_offsets
