"""CRM, the Contextual Refinement Module (our reconstruction), and the PPM / no-context alternatives.

From the paper: CRM pools the feature maps of all four backbone stages to the coarsest resolution, concatenates
them, and applies channel attention followed by spatial attention. Our reconstruction of the details:

- ``stages="all"``: average-pool F1..F3 to F4's size (kernel = stride = the stride ratio) and concatenate with F4;
  ``stages="last"`` uses F4 alone (the ablation without multi-stage pooling).
- A 1x1 conv-BN-ReLU to ``reduce_channels`` only where the concatenation exceeds ``reduce_threshold`` channels
  (defaults 1024 and 1024: ResNet-18 and VAN keep their 960 channels, ResNet-50/101's 3840 become 1024).
- ``attention="danet"``: DANet's channel attention (C x C affinity, softmax, learnable scale initialised at 0,
  residual), then DANet's position attention (N x N affinity with query/key at C/``qk_ratio``, scale at 0, residual).
  ``attention="cbam"``: CBAM's channel gate then spatial gate, each applied as a residual with a learnable scale
  initialised at 0 (so, as with DANet, a fresh CRM is its residual path).
- A 3x3 conv-BN-ReLU to the decoder width C.
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNReLU, autocast_off

ContextType = Literal["crm", "ppm", "none"]
AttentionType = Literal["danet", "cbam"]
StagesType = Literal["all", "last"]
CONTEXT_TYPES = ("crm", "ppm", "none")
ATTENTION_TYPES = ("danet", "cbam")
STAGE_CHOICES = ("all", "last")


class ChannelAttention(nn.Module):
    """DANet's channel attention module: out = x + gamma * softmax(affinity) @ x over channels."""

    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        flat = x.reshape(b, c, h * w)
        # The C x C energy sums over every position, so it grows with the image area (~7e4 at 1024x2048 with the
        # shipped EfficientNet-Lite0 weights): above float16's 65504. It is computed, and softmaxed, in float32
        # whatever autocast or the module's dtype say; the weights then go back to the input's dtype (a softmax
        # row sums to 1, so attn @ flat is bounded by max |flat| and cannot overflow).
        with autocast_off(x):
            f32 = flat.float()
            energy = torch.bmm(f32, f32.transpose(1, 2))  # B x C x C
            # DANet subtracts the energy from its row maximum before the softmax (softmax is shift-invariant, so
            # this is softmax(-energy): channels that respond differently attend to each other).
            attn = (energy.amax(dim=-1, keepdim=True) - energy).softmax(dim=-1)
        out = torch.bmm(attn.to(flat.dtype), flat).reshape(b, c, h, w)
        return x + self.gamma.to(out.dtype) * out


class PositionAttention(nn.Module):
    """DANet's position attention module: N x N affinity over positions, query/key at C / qk_ratio."""

    def __init__(self, channels: int, qk_ratio: int = 8):
        super().__init__()
        qk = max(channels // qk_ratio, 1)
        self.query = nn.Conv2d(channels, qk, 1)
        self.key = nn.Conv2d(channels, qk, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q = self.query(x).reshape(b, -1, h * w).transpose(1, 2)  # B x N x c'
        k = self.key(x).reshape(b, -1, h * w)  # B x c' x N
        with autocast_off(x):  # logits in float32, as in ChannelAttention
            attn = torch.bmm(q.float(), k.float()).softmax(dim=-1)  # B x N x N
        v = self.value(x).reshape(b, c, h * w)
        out = torch.bmm(v, attn.to(v.dtype).transpose(1, 2)).reshape(b, c, h, w)
        return x + self.gamma.to(out.dtype) * out


class CBAMChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.mlp = nn.Sequential(nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True), nn.Conv2d(hidden, channels, 1))
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        return x + self.gamma * (x * gate)


class CBAMSpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.conv(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], dim=1)))
        return x + self.gamma * (x * gate)


class CRM(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], strides: tuple[int, ...], channels: int, *,
                 attention: AttentionType, stages: StagesType, reduce_threshold: int = 1024,
                 reduce_channels: int = 1024, qk_ratio: int = 8):
        """The reconstruction's choices (``attention``, ``stages``) have no defaults here: their one owner is
        ``ContextConfig`` (the decoder builds CRM from it)."""
        super().__init__()
        if attention not in ATTENTION_TYPES:
            raise ValueError(f"CRM attention must be one of {ATTENTION_TYPES}, got {attention!r}")
        if stages not in STAGE_CHOICES:
            raise ValueError(f"CRM stages must be one of {STAGE_CHOICES}, got {stages!r}")
        self.stages = stages
        # pooling factor of each used stage down to the coarsest one
        self.pool = tuple(strides[-1] // s for s in strides) if stages == "all" else (1,)
        cat = sum(in_channels) if stages == "all" else in_channels[-1]
        self.reduce = ConvBNReLU(cat, reduce_channels, 1) if cat > reduce_threshold else nn.Identity()
        width = reduce_channels if cat > reduce_threshold else cat
        if attention == "danet":
            self.attention = nn.Sequential(ChannelAttention(), PositionAttention(width, qk_ratio))
        else:
            self.attention = nn.Sequential(CBAMChannelGate(width), CBAMSpatialGate())
        self.project = ConvBNReLU(width, channels, 3)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        used = features if self.stages == "all" else features[-1:]
        pooled = [F.avg_pool2d(f, k) if k > 1 else f for f, k in zip(used, self.pool)]
        x = self.reduce(torch.cat(pooled, dim=1))
        return self.project(self.attention(x))


def _pool_matrix(ones: torch.Tensor, bins: int) -> torch.Tensor:
    """``bins x L`` averaging matrix of adaptive average pooling over a length-L axis (``ones``: L ones): row i
    averages positions ``floor(i L / bins) .. ceil((i + 1) L / bins) - 1``, PyTorch's bins."""
    length = ones.sum()
    pos = ones.cumsum(0) - 1
    i = torch.arange(bins, device=ones.device, dtype=ones.dtype)
    start = torch.floor(i * length / bins)
    end = torch.ceil((i + 1) * length / bins)
    inside = (pos[None, :] >= start[:, None]) & (pos[None, :] < end[:, None])
    return inside.to(ones.dtype) / (end - start)[:, None]


def adaptive_avg_pool(x: torch.Tensor, bins: int) -> torch.Tensor:
    """``F.adaptive_avg_pool2d(x, bins)`` as two averaging matrices built from ``x``'s own shape, so an exported
    graph stays correct at any input size (ONNX has no adaptive pooling but the global one)."""
    rows = _pool_matrix(torch.ones_like(x[0, 0, :, 0]), bins)
    cols = _pool_matrix(torch.ones_like(x[0, 0, 0, :]), bins)
    return torch.matmul(torch.matmul(rows, x), cols.t())  # (bins x H) @ x @ (W x bins)


class PPM(nn.Module):
    """PSPNet's pyramid pooling on the last stage, with a 3x3 bottleneck to the decoder width (SFNet's context)."""

    def __init__(self, in_channels: int, channels: int, bins: tuple[int, ...] = (1, 2, 3, 6)):
        super().__init__()
        self.bins = bins
        self.branches = nn.ModuleList(ConvBNReLU(in_channels, channels, 1) for _ in bins)
        self.bottleneck = ConvBNReLU(in_channels + len(bins) * channels, channels, 3)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        pyramid = [x]
        for b, branch in zip(self.bins, self.branches):
            y = branch(adaptive_avg_pool(x, b))
            pyramid.append(F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False))
        return self.bottleneck(torch.cat(pyramid, dim=1))


class NoContext(nn.Module):
    """No context module: a 1x1 conv-BN-ReLU brings the last stage to the decoder width."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__()
        self.project = ConvBNReLU(in_channels, channels, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        return self.project(features[-1])
