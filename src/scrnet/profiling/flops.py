"""Compute report: multiply-accumulates (MACs, the field's "GFLOPs") and parameters of the eval-mode network.

Counted (``torch.utils.flop_counter.FlopCounterMode`` plus two formulas of ours): convolutions, matrix products
(linear layers, attention) and bilinear resampling, which is 4 MACs per output element for both
``F.interpolate(mode="bilinear")`` and ``F.grid_sample``. Not counted, as in most published figures: normalisation,
activations, element-wise additions and products, softmax, pooling, padding. The model runs on the ``meta``
device, so counting a 1024x2048 input takes no real compute; auxiliary heads are off (eval mode).
"""

from dataclasses import asdict, dataclass, field, replace

import torch
from torch.utils.flop_counter import FlopCounterMode

from ..models import ModelConfig, build_model, model_config

BILINEAR_MACS_PER_OUTPUT = 4


def _bilinear_flops(*args, out_shape, **kwargs) -> int:
    # FlopCounterMode counts FLOPs = 2 x MACs (one multiply + one add); keep that convention here.
    return 2 * BILINEAR_MACS_PER_OUTPUT * _numel(out_shape)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


CUSTOM_FORMULAS = {
    torch.ops.aten.upsample_bilinear2d: _bilinear_flops,
    torch.ops.aten.grid_sampler_2d: _bilinear_flops,
}


@dataclass
class ComputeReport:
    model: str
    input: list[int]
    gmacs: float
    params_m: float
    ops: dict[str, float] = field(default_factory=dict)  # op name -> GMACs
    parts: dict[str, float] = field(default_factory=dict)  # backbone / context / srm / head / output resize -> GMACs

    def to_json(self) -> dict:
        return asdict(self)


def count_macs(model: torch.nn.Module, size: tuple[int, int], batch: int = 1,
               channels: int = 3) -> tuple[int, dict[str, int], dict[str, int]]:
    """MACs of ``model(x)`` for ``x`` of shape ``batch x channels x H x W``; returns (total, per op, per module).

    ``model`` may live on any device; the count uses the tensors' shapes only. Counts are integers (MACs).
    """
    device = next(model.parameters()).device
    x = torch.zeros(batch, channels, *size, device=device)
    counter = FlopCounterMode(display=False, depth=4, custom_mapping=CUSTOM_FORMULAS)
    with counter, torch.no_grad():
        model(x)
    counts = counter.get_flop_counts()
    ops = {str(op).removeprefix("aten."): int(v) // 2 for op, v in counts.get("Global", {}).items()}
    modules = {name: sum(v.values()) // 2 for name, v in counts.items() if name != "Global"}
    return counter.get_total_flops() // 2, ops, modules


def compute_report(cfg: ModelConfig | str, size: tuple[int, int] = (1024, 2048)) -> ComputeReport:
    """The compute report of a zoo name or a config, built on the meta device (no weights, no compute)."""
    if isinstance(cfg, str):
        cfg = model_config(cfg)
    cfg = replace(cfg, backbone_weights=None)  # shapes only: no weights to read
    with torch.device("meta"):
        model = build_model(cfg).eval()
    total, ops, modules = count_macs(model, size)
    root = type(model).__name__
    parts = {
        "backbone": modules.get(f"{root}.backbone", 0),
        "context": modules.get(f"{root}.decoder.context", 0),
        "srm": sum(modules.get(f"{root}.decoder.refine.{i}", 0) for i in range(3)),
        "head": modules.get(f"{root}.decoder.fuse", 0) + modules.get(f"{root}.decoder.classifier", 0),
    }
    parts["resize"] = total - sum(parts.values())  # head's upsampling of G2..G4 and the logits to the input
    return ComputeReport(
        model=cfg.name, input=[1, 3, *size], gmacs=total / 1e9, params_m=model.num_params() / 1e6,
        ops={k: v / 1e9 for k, v in sorted(ops.items(), key=lambda kv: -kv[1])},
        parts={k: v / 1e9 for k, v in parts.items()},
    )


def format_report(report: ComputeReport) -> str:
    lines = [f"{report.model}  input {'x'.join(map(str, report.input))}  "
             f"{report.gmacs:.2f} GMACs  {report.params_m:.2f} M params", "", f"{'op':<28}{'GMACs':>10}{'share':>8}"]
    for op, g in report.ops.items():
        lines.append(f"{op:<28}{g:>10.3f}{g / report.gmacs:>8.1%}")
    lines += ["", f"{'part':<28}{'GMACs':>10}{'share':>8}"]
    for name, g in report.parts.items():
        lines.append(f"{name:<28}{g:>10.3f}{g / report.gmacs:>8.1%}")
    return "\n".join(lines)


def zoo_table(size: tuple[int, int] = (1024, 2048)) -> tuple[list[dict], list[dict]]:
    """What ``scrnet models`` lists: a row per zoo variant (backbone, decoder width, params, GMACs at ``size``) and
    the pretrained backbone weights' records."""
    from ..models import ZOO
    from ..models.backbones import IMAGENET_WEIGHTS

    rows = []
    for name in ZOO:
        report = compute_report(name, size)
        cfg = ZOO[name]()
        rows.append({"model": name, "backbone": cfg.backbone, "channels": cfg.channels,
                     "params_m": report.params_m, "gmacs": report.gmacs, "input": report.input})
    return rows, [w.to_json() for w in IMAGENET_WEIGHTS.values()]
