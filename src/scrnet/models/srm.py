"""SRM, the Semantic Refinement Module (our reconstruction; see README "What is from the paper").

From the paper: for every pixel of the upsampled decoder map, SRM predicts a 2-D offset guided by the
high-resolution backbone map of the same stage and by the offsets of the pixel's 3x3 neighbours, and resamples the
upsampled map at the shifted positions. Everything below that sentence is our reconstruction:

1. ``f' = conv1x1-BN-ReLU(f)`` to C channels; ``u = bilinear(g)`` to f's size.
2. Initial offsets ``d0 = conv3x3(conv1x1-BN-ReLU(cat[u, f']))`` with 2 channels (dx, dy) in pixels of the output
   grid. The last conv is zero-initialised, so a fresh SRM is exactly bilinear upsampling.
3. Neighbour guidance (``mode="neighbor"``): ``m = softmax_9(conv3x3(cat[u, f']))``; each pixel's offset is the
   m-weighted sum of the initial offsets of its 3x3 neighbourhood (zero offsets outside the map).
4. ``a = grid_sample(u, base_grid + offsets)``, bilinear, border padding, ``align_corners=False``.
5. Output ``conv3x3-BN-ReLU(a + f')``.

``mode="pixel"`` uses ``d0`` directly (SFNet-like, no neighbour guidance); ``mode="bilinear"`` skips steps 2-4
(``a = u``: a plain FPN top-down step); ``mode="dysample"`` replaces steps 1-4's upsampling and offsets by DySample
(``models/dysample.py``: offsets from the coarse map alone, no high-resolution guidance), a published peer to
compare SRM with; ``mode="carafe"`` likewise by CARAFE (``models/carafe.py``: content-aware reassembly kernels
predicted from the coarse map). ``hidden_channels`` (default C/2) is the width of the offset branch's
1x1 conv, a choice the paper does not pin down.

``offset_range`` (ours, default None: unbounded as above) bounds the initial offsets ``d0`` to ``+-range`` pixels of
the output grid with ``range * tanh(d0 / range)``, as DySample keeps its offsets small; a fresh SRM is still
bilinear upsampling.

``gate="guided"`` (ours, after SFNet-Lite's gated alignment; default ``"none"``) blends the resampled map with plain
bilinear upsampling per pixel: ``a = u + s * (warp(...) - u)``, ``s = sigmoid(conv3x3(hidden))`` from the offset
branch's hidden map (so the high-resolution guidance also decides where resampling is used); the gate conv is
zero-initialised (``s = 0.5``), and with zero offsets ``a = u`` whatever the gate.

``mask_input="hidden"`` is a cheaper alternative to step 3, not the default: the mask conv reads the offset
branch's C/2-channel hidden map instead of the 2C-channel ``cat[u, f']``, so the offset and mask convs share their
input and run as one 3x3 conv with 11 outputs.

``sample_from="coarse"`` replaces step 4's source: ``a = grid_sample(g, ...)`` at the same physical positions,
one bilinear interpolation of the coarse map instead of two (bilinear upsampling, then sampling ``u``), as
flow-alignment modules (SFNet) and DySample do. With zero offsets it is still exactly bilinear upsampling. The
offsets are unchanged (pixels of the output grid). ``u`` is then not computed at all unless the mask conv reads it
(``mask_input="guide"``). Sampling the 4x smaller ``g`` is also faster on CPU (better cache use).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .carafe import CARAFE
from .dysample import DySample
from .fuse import fold_into_conv
from .layers import ConvBNReLU, autocast_off
from .sampling import BilinearSampler, base_grid, upsample_bilinear, warp  # noqa: F401  (base_grid: public)
from .seeding import init_part

SRMMode = Literal["neighbor", "pixel", "bilinear", "dysample", "carafe"]
SRM_MODES = ("neighbor", "pixel", "bilinear", "dysample", "carafe")
MaskInput = Literal["guide", "hidden"]
MASK_INPUTS = ("guide", "hidden")
SampleFrom = Literal["upsampled", "coarse"]
SAMPLE_FROM = ("upsampled", "coarse")
# modes that move no sample, so have no offset field to report or draw: plain upsampling, and CARAFE's reassembly
MODES_WITHOUT_OFFSETS = ("bilinear", "carafe")
SRMGate = Literal["none", "guided"]
SRM_GATES = ("none", "guided")


def neighbor_offsets(d0: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """Each pixel's offset as the softmax(mask)-weighted sum of the initial offsets of its 3x3 neighbourhood.

    ``d0``: ``B x 2 x H x W``; ``mask_logits``: ``B x 9 x H x W``, neighbour k = 3 * (dy + 1) + (dx + 1) in
    row-major order (the ``unfold`` order); neighbours outside the map contribute zero offsets.
    """
    b, _, h, w = d0.shape
    with autocast_off(d0):  # offsets are coordinates: float32 (see warp)
        weights = mask_logits.float().softmax(dim=1).unsqueeze(1)  # B x 1 x 9 x H x W
        neighbours = F.unfold(d0.float(), kernel_size=3, padding=1).view(b, 2, 9, h, w)
        return (neighbours * weights).sum(dim=2)


class SRM(nn.Module):
    """Refines the upsampling of the coarse decoder map ``g`` guided by the backbone map ``f`` (2x g's size)."""

    def __init__(self, in_channels: int, channels: int, *, mode: SRMMode, mask_input: MaskInput,
                 sample_from: SampleFrom, hidden_channels: int | None = None, dysample_groups: int = 4,
                 dysample_scope: str = "static", carafe: tuple[int, int, int] = (5, 3, 64),
                 offset_range: float | None = None, gate: SRMGate = "none"):
        """The reconstruction's choices (``mode``, ``mask_input``, ``sample_from``) have no defaults here: the one
        owner of the defaults is ``SRMConfig`` (the decoder builds SRM from it), so the two cannot drift apart."""
        super().__init__()
        if mode not in SRM_MODES:
            raise ValueError(f"SRM mode must be one of {SRM_MODES}, got {mode!r}")
        if mask_input not in MASK_INPUTS:
            raise ValueError(f"SRM mask_input must be one of {MASK_INPUTS}, got {mask_input!r}")
        if sample_from not in SAMPLE_FROM:
            raise ValueError(f"SRM sample_from must be one of {SAMPLE_FROM}, got {sample_from!r}")
        if gate not in SRM_GATES:
            raise ValueError(f"SRM gate must be one of {SRM_GATES}, got {gate!r}")
        self.mode = mode
        self.gate_kind = gate if mode in ("neighbor", "pixel") else "none"
        self.offset_range = None if offset_range is None else float(offset_range)
        self.mask_input = mask_input
        self.sample_from = sample_from
        with init_part("lateral"):
            self.lateral = ConvBNReLU(in_channels, channels, 1)
        with init_part("out"):
            self.out = ConvBNReLU(channels, channels, 3)
        self.sampler = BilinearSampler()  # no parameters: names the sampling in exported graphs
        if mode == "bilinear":
            return
        if mode == "dysample":
            with init_part("dysample"):
                self.dysample = DySample(channels, dysample_groups, dysample_scope)
            return
        if mode == "carafe":  # (kernel, encoder kernel, compressed channels)
            with init_part("carafe"):
                self.carafe = CARAFE(channels, *carafe)
            return
        hidden = hidden_channels or channels // 2
        # offset branch: conv1x1-BN-ReLU then a zero-initialised 3x3 conv to (dx, dy)
        with init_part("offset_hidden"):
            self.offset_hidden = nn.Conv2d(2 * channels, hidden, 1, bias=False)
        self.offset_bn = nn.BatchNorm2d(hidden)  # draws nothing
        self.offset = nn.Conv2d(hidden, 2, 3, padding=1)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        if mode == "neighbor":
            with init_part("mask"):
                self.mask = nn.Conv2d(2 * channels if mask_input == "guide" else hidden, 9, 3, padding=1)
        if self.gate_kind == "guided":  # zero-initialised: the gate starts at 0.5 everywhere
            self.gate = nn.Conv2d(hidden, 1, 3, padding=1)
            nn.init.zeros_(self.gate.weight)
            nn.init.zeros_(self.gate.bias)

    def offset_parameters(self) -> list[nn.Parameter]:
        """The parameters of the offset (and mask) branch: what ``train.optim.offset_lr_mult`` scales."""
        if self.mode == "bilinear":
            return []
        if self.mode == "dysample":
            return list(self.dysample.parameters())
        if self.mode == "carafe":
            return list(self.carafe.parameters())
        branch = [self.offset_hidden, self.offset_bn, self.offset] + ([self.mask] if self.mode == "neighbor" else [])
        branch += [self.gate] if self.gate_kind == "guided" else []
        return [p for m in branch for p in m.parameters()]

    def fold_offset_bn(self) -> int:
        """Fold the offset branch's BatchNorm into its 1x1 conv for inference (what ``SCRNet.fuse`` does for the
        module convs, here for the conv that ``offsets`` applies functionally in two halves): the scale goes into
        both halves' weights, the shift becomes a bias (bilinear upsampling keeps constants, so adding it after the
        sum is exact). Returns 1 if folded, 0 if there is nothing to fold."""
        if not isinstance(getattr(self, "offset_bn", None), nn.BatchNorm2d):
            return 0
        fold_into_conv(self.offset_hidden, self.offset_bn)
        self.offset_bn = nn.Identity()
        return 1

    def offsets(self, g: torch.Tensor, u: torch.Tensor | None, f_lat: torch.Tensor) -> torch.Tensor:
        """The offset field (``B x 2 x H x W``, pixels of f's grid, dx then dy) that SRM applies when it samples
        ``u = bilinear(g)`` (or ``g`` itself, ``sample_from="coarse"``). ``u`` may be None: it is computed here if
        the mask conv needs it.

        Computes exactly the convolutions over ``cat[u, f']`` of the module docstring, without the concatenation:
        a conv over a concatenation is the sum of convs over its parts, and the 1x1 conv over ``u`` commutes with
        bilinear upsampling (both are linear, one over channels, one over positions), so it runs on ``g``, at a
        quarter of the pixels (docs/benchmarks.md measures the gain).
        """
        if self.mode in MODES_WITHOUT_OFFSETS:
            return f_lat.new_zeros(f_lat.shape[0], 2, f_lat.shape[2], f_lat.shape[3])
        if self.mode == "dysample":
            return self.dysample(g)[1]
        return self._offsets(g, u, f_lat, self._hidden(g, f_lat))

    def _hidden(self, g: torch.Tensor, f_lat: torch.Tensor) -> torch.Tensor:
        """The offset branch's hidden map, ``relu(bn(conv1x1(cat[u, f'])))``, computed without the concatenation
        (see :meth:`offsets`)."""
        c = g.shape[1]
        w = self.offset_hidden.weight
        pre = upsample_bilinear(F.conv2d(g, w[:, :c]), f_lat) + F.conv2d(f_lat, w[:, c:], self.offset_hidden.bias)
        return F.relu(self.offset_bn(pre))

    def _offsets(self, g: torch.Tensor, u: torch.Tensor | None, f_lat: torch.Tensor,
                 hidden: torch.Tensor) -> torch.Tensor:
        c = g.shape[1]
        if self.mode == "pixel":
            return self.bounded(self.offset(hidden))
        if self.mask_input == "guide":
            m = self.mask
            u = upsample_bilinear(g, f_lat) if u is None else u
            mask_logits = F.conv2d(u, m.weight[:, :c], padding=1) + F.conv2d(f_lat, m.weight[:, c:], m.bias, padding=1)
            return neighbor_offsets(self.bounded(self.offset(hidden)), mask_logits)
        # offset and mask convs read the same map with the same kernel: one conv computes both
        both = F.conv2d(hidden, torch.cat([self.offset.weight, self.mask.weight]),
                        torch.cat([self.offset.bias, self.mask.bias]), padding=1)
        return neighbor_offsets(self.bounded(both[:, :2]), both[:, 2:])

    def bounded(self, d0: torch.Tensor) -> torch.Tensor:
        """The initial offsets bounded to ``+-offset_range`` pixels (``range * tanh(d0 / range)``: the identity to
        first order near zero, so zero offsets stay zero); unchanged when ``offset_range`` is None. The neighbour
        weighting (a convex combination) keeps the bound."""
        if self.offset_range is None:
            return d0
        with autocast_off(d0):  # coordinates: float32
            return self.offset_range * torch.tanh(d0.float() / self.offset_range)

    def forward(self, g: torch.Tensor, f: torch.Tensor, return_offsets: bool = False):
        f_lat = self.lateral(f)
        if self.mode == "dysample":  # samples g directly: no bilinear map u is needed
            a, offsets = self.dysample(g)
            out = self.out(a + f_lat)
            return (out, offsets) if return_offsets else out
        if self.mode == "bilinear":
            offsets = None
            a = upsample_bilinear(g, f_lat)
        elif self.mode == "carafe":
            offsets = None
            a = self.carafe(g)
        else:  # neighbor / pixel; sampling g needs u only for the mask conv (computed there) or the gate
            gated = self.gate_kind == "guided"
            u = upsample_bilinear(g, f_lat) if gated or self.sample_from == "upsampled" else None
            hidden = self._hidden(g, f_lat)
            offsets = self._offsets(g, u, f_lat, hidden)
            a = warp(g if self.sample_from == "coarse" else u, offsets, self.sampler)
            if gated:  # a = gate * resampled + (1 - gate) * bilinear
                a = u + torch.sigmoid(self.gate(hidden)) * (a - u)
        out = self.out(a + f_lat)
        return (out, offsets) if return_offsets else out
