"""The SCRNet decoder (SFNet / UPerNet shape): context at stride 32, three SRM steps, a fused head.

```
G4 = context(F1..F4)                       CRM | PPM | none
G3 = SRM(G4, F3); G2 = SRM(G3, F2); G1 = SRM(G2, F1)
head: upsample G2..G4 to stride 4, concat with G1, conv3x3-BN-ReLU to C, conv1x1 to classes
      (fusion="reduce1x1": conv1x1-BN-ReLU to C, then conv3x3-BN-ReLU, a third of the MACs)
deep supervision (train only): conv3x3-BN-ReLU + conv1x1 heads on G2, G3, G4
```
"""

import torch
from torch import nn

from .config import ContextConfig, SRMConfig
from .crm import CRM, PPM, NoContext
from .head import build_fusion
from .layers import ConvBNReLU
from .seeding import init_part
from .srm import SRM, upsample_bilinear


def build_context(cfg: ContextConfig, in_channels: tuple[int, ...], strides: tuple[int, ...],
                  channels: int) -> nn.Module:
    if cfg.type == "crm":
        return CRM(in_channels, strides, channels, attention=cfg.attention, stages=cfg.stages,
                   reduce_threshold=cfg.reduce_threshold, reduce_channels=cfg.reduce_channels, qk_ratio=cfg.qk_ratio)
    if cfg.type == "ppm":
        return PPM(in_channels[-1], channels, tuple(cfg.ppm_bins))
    return NoContext(in_channels[-1], channels)


class SegHead(nn.Sequential):
    """conv3x3-BN-ReLU then conv1x1 to classes (the auxiliary heads)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(ConvBNReLU(channels, channels, 3), nn.Conv2d(channels, num_classes, 1))


class Decoder(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], strides: tuple[int, ...], channels: int, num_classes: int,
                 srm: SRMConfig, context: ContextConfig, deep_supervision: bool, fusion: str = "conv3x3"):
        super().__init__()
        with init_part("context"):
            self.context = build_context(context, in_channels, strides, channels)
        # refine[0] makes G3 from (G4, F3), refine[1] G2 from (G3, F2), refine[2] G1 from (G2, F1)
        self.refine = nn.ModuleList()
        for k, i in enumerate((2, 1, 0)):
            with init_part(f"refine.{k}"):
                self.refine.append(SRM(in_channels[i], channels, mode=srm.mode, mask_input=srm.mask_input,
                                       sample_from=srm.sample_from, hidden_channels=srm.hidden_channels,
                                       dysample_groups=srm.dysample_groups, dysample_scope=srm.dysample_scope,
                                       carafe=(srm.carafe_kernel, srm.carafe_encoder_kernel, srm.carafe_channels),
                                       offset_range=srm.offset_range, gate=srm.gate))
        with init_part("fuse"):
            self.fuse = build_fusion(fusion, channels)
        with init_part("classifier"):
            self.classifier = nn.Conv2d(channels, num_classes, 1)
        self.aux_heads = None
        if deep_supervision:
            self.aux_heads = nn.ModuleList()
            for k in range(3):
                with init_part(f"aux_heads.{k}"):
                    self.aux_heads.append(SegHead(channels, num_classes))

    def forward(self, features: list[torch.Tensor], return_offsets: bool = False) -> dict[str, object]:
        """Returns ``{"logits": stride-4 logits, "aux": [G2, G3, G4 logits] (training with deep supervision),
        "offsets": [offsets of G3, G2, G1 steps] (when asked)}``."""
        g = self.context(features)
        maps, offsets = [g], []
        for srm, f in zip(self.refine, (features[2], features[1], features[0])):
            g, off = srm(g, f, return_offsets=True)
            maps.append(g)
            offsets.append(off)
        g1 = maps[-1]  # maps = [G4, G3, G2, G1]
        fused = torch.cat([g1] + [upsample_bilinear(m, g1) for m in maps[-2::-1]], dim=1)
        out: dict[str, object] = {"logits": self.classifier(self.fuse(fused))}
        if self.training and self.aux_heads is not None:
            out["aux"] = [head(m) for head, m in zip(self.aux_heads, (maps[2], maps[1], maps[0]))]
        if return_offsets:
            out["offsets"] = offsets
        return out
