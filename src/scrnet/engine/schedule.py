"""Optimiser and learning-rate schedule: SGD or AdamW, per-group head multiplier and no weight decay on
normalisation weights and biases, poly decay with linear warm-up."""

import torch

from ..config import OptimConfig


def param_groups(model: torch.nn.Module, cfg: OptimConfig) -> list[dict]:
    """(backbone | head | offsets) x (decayed | not decayed) groups, each with its lr and weight decay. The offset
    groups (SRM's / DySample's offset and mask branches, ``head_lr_mult * offset_lr_mult``) exist only when
    ``offset_lr_mult`` is not 1, so the default keeps the four groups earlier checkpoints saved."""
    from ..models.srm import SRM

    offset_ids = set()
    if cfg.offset_lr_mult != 1.0:
        offset_ids = {id(p) for m in model.modules() if isinstance(m, SRM) for p in m.offset_parameters()}
    groups: dict[tuple[int, bool], list] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = 2 if id(p) in offset_ids else 0 if name.startswith(("backbone.", "module.backbone.")) else 1
        decay = not (cfg.no_decay_norm_bias and p.ndim <= 1)
        groups.setdefault((part, decay), []).append(p)
    mult = (1.0, cfg.head_lr_mult, cfg.head_lr_mult * cfg.offset_lr_mult)
    names = ("backbone", "head", "offsets")
    return [{"params": params, "lr": cfg.lr * mult[part], "weight_decay": cfg.weight_decay if decay else 0.0,
             "name": f"{names[part]}{'' if decay else '_no_decay'}"}
            for (part, decay), params in sorted(groups.items())]


def build_optimizer(model: torch.nn.Module, cfg: OptimConfig, fused: bool = False) -> torch.optim.Optimizer:
    """SGD or AdamW over :func:`param_groups`. ``fused``: torch's fused kernels, which can skip a step on the device
    (``found_inf``) without the host reading a flag; otherwise torch's default implementation."""
    groups = param_groups(model, cfg)
    extra = {"fused": True} if fused else {}
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, **extra)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), **extra)


class PolyWarmup:
    """Multiplier of each group's initial lr at iteration ``it`` (a plain object, so the scheduler state saves)."""

    def __init__(self, max_iters: int, power: float, warmup_iters: int, warmup_ratio: float, min_ratio: float):
        self.max_iters, self.power = max_iters, power
        self.warmup_iters, self.warmup_ratio, self.min_ratio = warmup_iters, warmup_ratio, min_ratio

    def __call__(self, it: int) -> float:
        poly = (1 - min(it, self.max_iters) / self.max_iters) ** self.power
        factor = self.min_ratio + (1 - self.min_ratio) * poly
        if it < self.warmup_iters:
            factor *= self.warmup_ratio + (1 - self.warmup_ratio) * it / self.warmup_iters
        return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: OptimConfig, max_iters: int):
    rule = PolyWarmup(max_iters, cfg.poly_power, cfg.warmup_iters, cfg.warmup_ratio, cfg.min_lr / cfg.lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, rule)
