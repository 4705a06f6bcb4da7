"""CARAFE, content-aware reassembly of features: a published upsampler, an SRM mode to compare with
(``srm.mode=carafe``).

Built from the description in Wang et al., "CARAFE: Content-Aware ReAssembly of FEatures" (ICCV 2019,
arXiv 1905.02188), at scale 2:

1. Kernel prediction from the coarse map alone: a 1x1 *channel compressor* to ``compressed`` channels (64), then a
   ``encoder_kernel`` x ``encoder_kernel`` *content encoder* (3x3) to ``scale^2 * kernel^2`` channels; each fine
   pixel takes its ``kernel^2`` (5x5 = 25) channels by pixel shuffle, normalised by a softmax.
2. Reassembly: the fine pixel ``(i', j')`` is the kernel-weighted sum of the ``kernel x kernel`` neighbourhood of
   the coarse pixel ``(i' // 2, j' // 2)`` (zero outside the map), the same kernel for every channel.

The reassembly is written as one einsum over the unfolded neighbourhoods (a batched matrix product), so the
compute count sees its ``scale^2 * kernel^2`` MACs per coarse pixel and channel, and ONNX exports it as ``Einsum``.
The encoder starts at normal(std=0.001), so a fresh CARAFE averages each 5x5 neighbourhood (the softmax of ~0);
the paper does not state its initialisation. Nothing of the high-resolution backbone map guides the kernels.
"""

import torch
import torch.nn.functional as F
from torch import nn


class CARAFE(nn.Module):
    """Upsamples ``g`` (``B x C x h x w``) by 2 (SCRNet pads its input to a multiple of 32: every fine map is
    exactly twice its coarse map)."""

    scale = 2

    def __init__(self, channels: int, kernel: int = 5, encoder_kernel: int = 3, compressed: int = 64):
        super().__init__()
        if kernel % 2 == 0 or encoder_kernel % 2 == 0:
            raise ValueError(f"CARAFE kernels must be odd, got kernel={kernel}, encoder_kernel={encoder_kernel}")
        self.kernel = kernel
        self.compress = nn.Conv2d(channels, compressed, 1)
        self.encode = nn.Conv2d(compressed, self.scale ** 2 * kernel ** 2, encoder_kernel, padding=encoder_kernel // 2)
        nn.init.normal_(self.encode.weight, std=0.001)
        nn.init.zeros_(self.encode.bias)

    def kernels(self, g: torch.Tensor) -> torch.Tensor:
        """The reassembly kernels, ``B x kernel^2 x scale^2 x h x w``: for each coarse pixel and each of its
        ``scale^2`` fine pixels (pixel-shuffle order), ``kernel^2`` weights summing to 1."""
        b, _, h, w = g.shape
        logits = self.encode(self.compress(g))  # channel k * scale^2 + phase, pixel shuffle's layout
        return logits.reshape(b, self.kernel ** 2, self.scale ** 2, h, w).softmax(dim=1)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        b, c, h, w = g.shape
        weights = self.kernels(g).to(g.dtype)
        patches = F.unfold(g, self.kernel, padding=self.kernel // 2).reshape(b, c, self.kernel ** 2, h, w)
        out = torch.einsum("bckhw,bkphw->bcphw", patches, weights)  # B x C x scale^2 x h x w
        return F.pixel_shuffle(out.reshape(b, c * self.scale ** 2, h, w), self.scale)
