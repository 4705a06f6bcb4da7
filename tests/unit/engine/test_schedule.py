"""Optimiser parameter groups and the poly schedule with warm-up."""

import pytest

from scrnet.config import OptimConfig
from scrnet.engine.schedule import PolyWarmup, build_optimizer, build_scheduler, param_groups
from scrnet.models import create_model


def test_poly_schedule_with_warmup():
    rule = PolyWarmup(max_iters=100, power=0.9, warmup_iters=10, warmup_ratio=0.1, min_ratio=0.0)
    assert rule(0) == pytest.approx(0.1)
    assert rule(5) == pytest.approx((1 - 0.05) ** 0.9 * (0.1 + 0.9 * 0.5))
    assert rule(50) == pytest.approx(0.5 ** 0.9)
    assert rule(100) == 0.0
    assert PolyWarmup(100, 1.0, 0, 1.0, 0.1)(100) == pytest.approx(0.1)


def test_param_groups_head_multiplier_and_no_decay_on_norms_and_biases():
    model = create_model("fpn_r18", num_classes=3)
    cfg = OptimConfig(lr=0.01, weight_decay=5e-4, head_lr_mult=10.0)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert groups["head"]["lr"] == pytest.approx(0.1) and groups["backbone"]["lr"] == 0.01
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 5e-4
    assert all(p.ndim <= 1 for p in groups["head_no_decay"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, max_iters=10)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** 0.9)


@pytest.mark.parametrize("mode,per_step", [("neighbor", 7), ("pixel", 5), ("dysample", 2)])
def test_offset_lr_mult_puts_the_offset_branches_in_their_own_groups(mode, per_step):
    model = create_model("scrnet_r18", num_classes=3, srm={"mode": mode})
    assert len(param_groups(model, OptimConfig(head_lr_mult=10.0))) == 4  # default: the groups checkpoints hold
    cfg = OptimConfig(lr=0.01, head_lr_mult=10.0, offset_lr_mult=0.1)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    offsets = groups["offsets"]["params"] + groups.get("offsets_no_decay", {"params": []})["params"]
    assert len(offsets) == 3 * per_step  # weights, biases, BN of each step's offset (and mask) branch
    assert groups["offsets"]["lr"] == pytest.approx(0.01) and groups["head"]["lr"] == pytest.approx(0.1)
    branch = {id(p) for srm in model.decoder.refine for p in srm.offset_parameters()}
    assert {id(p) for p in offsets} == branch
    assert not branch & {id(p) for g in ("head", "head_no_decay") for p in groups[g]["params"]}
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    with pytest.raises(ValueError, match="offset_lr_mult"):
        OptimConfig(offset_lr_mult=0)
