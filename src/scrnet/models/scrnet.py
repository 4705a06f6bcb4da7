"""SCRNet: backbone + decoder, taking any input size and returning logits at that size."""

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .backbones import BACKBONES, Normalization, build_backbone
from .config import ModelConfig
from .decoder import Decoder
from .seeding import init_part, seeded_init


@dataclass
class SegmentationOutput:
    """What SCRNet returns in train mode, or when asked for its offsets: the logits ``out`` (``B x K x H x W``),
    the deep-supervision logits ``aux`` (one per head, at the input size; empty in eval mode or without deep
    supervision), and with ``return_offsets`` the SRM offsets of each top-down step, coarse to fine (``B x 2 x h
    x w`` in pixels of that step's map, None for a bilinear step)."""

    out: torch.Tensor
    aux: list[torch.Tensor] = field(default_factory=list)
    offsets: list[torch.Tensor | None] | None = None


class SCRNet(nn.Module):
    """``B x 3 x H x W`` -> logits ``B x K x H x W`` (a tensor) in eval mode; a :class:`SegmentationOutput` in
    train mode or with ``return_offsets=True``.

    Inputs are zero-padded at the bottom/right to a multiple of ``cfg.pad_to`` (so every stage has an exact stride)
    and the logits are cropped back, so any H and W work.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        options = {"deep_stem": True} if cfg.deep_stem else {}
        if cfg.drop_path_rate is not None:
            options["drop_path_rate"] = cfg.drop_path_rate
        with init_part("backbone"):
            self.backbone = build_backbone(cfg.backbone, cfg.backbone_weights, **options)
        if cfg.frozen_stages >= 0:
            self.backbone.freeze(cfg.frozen_stages)
        with init_part("decoder"):
            self.decoder = Decoder(self.backbone.channels, self.backbone.strides, cfg.channels, cfg.num_classes,
                                   cfg.srm, cfg.context, cfg.deep_supervision, cfg.fusion)

    @property
    def normalization(self) -> Normalization:
        """The input normalisation (mean/std on 0..1 RGB) this model expects: for a model loaded from a checkpoint
        or published folder, the one it was trained with (stored there); for a model built in Python, the one its
        backbone's weights expect."""
        return getattr(self, "_normalization", None) or BACKBONES[self.cfg.backbone].normalization

    def set_normalization(self, mean, std) -> None:
        """Record the input normalisation the weights were trained with (loading does, from the stored config)."""
        self._normalization = Normalization(tuple(float(v) for v in mean), tuple(float(v) for v in std))

    def _check_input(self, x: torch.Tensor) -> None:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != 3:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"SCRNet expects a 4-D tensor B x 3 x H x W (normalised RGB), got {got}")

    def forward(self, x: torch.Tensor, return_offsets: bool = False) -> torch.Tensor | SegmentationOutput:
        self._check_input(x)
        h, w = x.shape[-2:]
        m = self.cfg.pad_to
        padded = F.pad(x, (0, (-w) % m, 0, (-h) % m))
        out = self.decoder(self.backbone(padded), return_offsets=return_offsets)
        size = padded.shape[-2:]

        def to_input(logits: torch.Tensor) -> torch.Tensor:
            return F.interpolate(logits, size=size, mode="bilinear", align_corners=False)[..., :h, :w]

        logits = to_input(out["logits"])
        if not self.training and not return_offsets:
            return logits
        return SegmentationOutput(logits, [to_input(a) for a in out.get("aux", [])],
                                  out["offsets"] if return_offsets else None)

    def fuse(self, example: torch.Tensor | None = None) -> "SCRNet":
        """Fold every Conv-BN pair for inference, in place (eval mode; returns ``self``). Logits equal the unfused
        model's within 1e-4 of their range (checked on ``example``, default a 1 x 3 x 64 x 128 random input).
        Export and the benchmark do this by default. The number of folded pairs is kept in ``fused_pairs``."""
        from .fuse import fuse_conv_bn

        self.eval()
        if example is None:
            p = next(self.parameters())
            example = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(0)).to(p.device, p.dtype)

        def srm_folds() -> int:  # SRM's offset branch applies its 1x1 conv functionally: folded by SRM itself
            return sum(srm.fold_offset_bn() for srm in self.decoder.refine)

        self.fused_pairs = fuse_conv_bn(self, example, extra=srm_folds)
        return self

    def num_params(self, include_aux: bool = False) -> int:
        """Parameters of the eval-mode network (auxiliary heads excluded unless asked)."""
        aux = self.decoder.aux_heads
        skip = {id(p) for p in aux.parameters()} if aux is not None and not include_aux else set()
        return sum(p.numel() for p in self.parameters() if id(p) not in skip)


def build_model(cfg: ModelConfig, init_seed: int | None = None) -> SCRNet:
    """The network of ``cfg``. ``init_seed`` None: its initial weights are drawn from torch's shared stream, in
    the order the modules are built; an integer: each part draws from its own generator, seeded from ``(init_seed,
    its qualified name)`` (:mod:`scrnet.models.seeding`), and the process's generators are not touched."""
    with seeded_init(init_seed):
        return SCRNet(cfg)
