"""VAN (Visual Attention Network, Guo et al. 2022) B0/B1/B2 with the official repository's parameter names.

Stage i: overlapping patch embedding (7x7 stride 4, then 3x3 stride 2) with BatchNorm, blocks of
``x + ls1 * Attention(BN(x))`` and ``x + ls2 * MLP(BN(x))`` where Attention wraps the large-kernel attention
(5x5 depth-wise, 7x7 depth-wise with dilation 3, 1x1), and a LayerNorm over channels at the end of the stage.
Official checkpoints (``van_b1`` = "VAN-Small") load as they are; their ``head.*`` classifier keys are dropped.
"""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Backbone


class DropPath(nn.Module):
    """Stochastic depth: drops the whole residual branch per sample during training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class DWConv(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dwconv(x)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.dwconv = DWConv(hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.dwconv(self.fc1(x))))


def dilated_depthwise_by_phases(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """``conv(x)`` for a stride-1 depth-wise conv with dilation d and 'same' padding, computed as an undilated conv
    on the d x d phases of ``x`` (``pixel_unshuffle``, the conv's kernel repeated per phase, ``pixel_shuffle``).
    The same sums of the same products, so equal up to rounding order; it exists because GPU libraries have fast
    undilated depth-wise kernels and slow dilated ones. ``x`` is zero-padded to a multiple of d first (the conv's
    own padding is zeros too), and the result cropped back."""
    d, k = conv.dilation[0], conv.kernel_size[0]
    height, width = x.shape[-2:]
    pad_h, pad_w = (-height) % d, (-width) % d
    phases = F.pixel_unshuffle(F.pad(x, (0, pad_w, 0, pad_h)), d)  # B x C*d*d x H/d x W/d, channel c*d*d + phase
    weight = conv.weight.repeat_interleave(d * d, dim=0)
    bias = conv.bias.repeat_interleave(d * d) if conv.bias is not None else None
    out = F.conv2d(phases, weight, bias, padding=k // 2, groups=phases.shape[1])
    return F.pixel_shuffle(out, d)[..., :height, :width]


class LKA(nn.Module):
    """Large-kernel attention: a 21x21 receptive field from a 5x5 and a dilated 7x7 depth-wise conv.

    ``split_dilation`` computes the dilated conv on the input's 3 x 3 phases instead (same result up to rounding;
    see :func:`dilated_depthwise_by_phases`); off by default, switched for a whole model by
    :func:`split_dilated_convs`."""

    def __init__(self, dim: int):
        super().__init__()
        self.conv0 = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.conv_spatial = nn.Conv2d(dim, dim, 7, padding=9, groups=dim, dilation=3)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.split_dilation = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.conv0(x)
        a = dilated_depthwise_by_phases(self.conv_spatial, a) if self.split_dilation else self.conv_spatial(a)
        return x * self.conv1(a)


def split_dilated_convs(model: nn.Module, enabled: bool = True) -> int:
    """Switch every LKA in ``model`` to (or back from) the phase-split dilated conv; returns how many."""
    lkas = [m for m in model.modules() if isinstance(m, LKA)]
    for m in lkas:
        m.split_dilation = enabled
    return len(lkas)


class Attention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.proj_1 = nn.Conv2d(dim, dim, 1)
        self.activation = nn.GELU()
        self.spatial_gating_unit = LKA(dim)
        self.proj_2 = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.proj_2(self.spatial_gating_unit(self.activation(self.proj_1(x))))


class Block(nn.Module):
    def __init__(self, dim: int, mlp_ratio: float, drop_path: float):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(dim)
        self.attn = Attention(dim)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.layer_scale_1 = nn.Parameter(1e-2 * torch.ones(dim))
        self.layer_scale_2 = nn.Parameter(1e-2 * torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.layer_scale_1[:, None, None] * self.attn(self.norm1(x)))
        return x + self.drop_path(self.layer_scale_2[:, None, None] * self.mlp(self.norm2(x)))


class OverlapPatchEmbed(nn.Module):
    def __init__(self, patch_size: int, stride: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride, patch_size // 2)
        self.norm = nn.BatchNorm2d(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x))


class VAN(Backbone):
    def __init__(self, embed_dims: list[int], depths: list[int], mlp_ratios: list[float],
                 drop_path_rate: float = 0.1, num_classes: int | None = None):
        super().__init__()
        n = sum(depths)
        rates = [drop_path_rate * i / max(n - 1, 1) for i in range(n)]  # linearly increasing, as in VAN
        start = 0
        in_chans = 3
        for i, (dim, depth, ratio) in enumerate(zip(embed_dims, depths, mlp_ratios), start=1):
            patch, stride = (7, 4) if i == 1 else (3, 2)
            setattr(self, f"patch_embed{i}", OverlapPatchEmbed(patch, stride, in_chans, dim))
            setattr(self, f"block{i}", nn.ModuleList(Block(dim, ratio, rates[start + j]) for j in range(depth)))
            setattr(self, f"norm{i}", nn.LayerNorm(dim, eps=1e-6))
            start += depth
            in_chans = dim
        self.channels = tuple(embed_dims)
        self.head = nn.Linear(embed_dims[-1], num_classes) if num_classes else None
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Conv2d):
            fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
            nn.init.normal_(m.weight, 0.0, (2.0 / fan_out) ** 0.5)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def stages(self) -> list[list[nn.Module]]:
        """The first patch embedding is the stem; stage i is its blocks and norm (and, from stage 2, its patch
        embedding)."""
        n = len(self.channels)
        return [[self.patch_embed1]] + [([getattr(self, f"patch_embed{i}")] if i > 1 else [])
                                        + [getattr(self, f"block{i}"), getattr(self, f"norm{i}")]
                                        for i in range(1, n + 1)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        fmt = torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) and x.shape[1] > 1 \
            else torch.contiguous_format
        for i in range(1, len(self.channels) + 1):
            x = getattr(self, f"patch_embed{i}")(x)
            for blk in getattr(self, f"block{i}"):
                x = blk(x)
            norm = getattr(self, f"norm{i}")
            x = F.layer_norm(x.permute(0, 2, 3, 1), norm.normalized_shape, norm.weight, norm.bias, norm.eps)
            # back to the input's memory format: a plain .contiguous() would silently undo channels_last
            x = x.permute(0, 3, 1, 2).contiguous(memory_format=fmt)
            outs.append(x)
        return outs

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if self.head is None:
            raise RuntimeError("this VAN was built without a classifier (num_classes=None)")
        return self.head(self.forward(x)[-1].mean((2, 3)))


def van_b0(drop_path_rate: float = 0.1, num_classes: int | None = None) -> VAN:
    return VAN([32, 64, 160, 256], [3, 3, 5, 2], [8, 8, 4, 4], drop_path_rate, num_classes)


def van_b1(drop_path_rate: float = 0.1, num_classes: int | None = None) -> VAN:
    return VAN([64, 128, 320, 512], [2, 2, 4, 2], [8, 8, 4, 4], drop_path_rate, num_classes)


def van_b2(drop_path_rate: float = 0.1, num_classes: int | None = None) -> VAN:
    return VAN([64, 128, 320, 512], [3, 3, 12, 3], [8, 8, 4, 4], drop_path_rate, num_classes)
