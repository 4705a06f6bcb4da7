"""model.frozen_stages (mmsegmentation's backbone.frozen_stages): what is frozen, for every backbone."""

import pytest
import torch
from torch import nn

from scrnet.config import ConfigError
from scrnet.models import build_model, model_config
from scrnet.models.backbones import build_backbone

BUILT = {name: build_backbone(name) for name in ("resnet18", "efficientnet_lite0", "van_b0")}


@pytest.mark.parametrize("name", BUILT)
def test_the_stem_and_four_stages_partition_the_backbone_and_end_at_its_taps(name):
    backbone = BUILT[name]
    stages = backbone.stages()
    assert len(stages) == 5
    ids = [id(p) for stage in stages for m in stage for p in m.parameters()]
    assert len(ids) == len(set(ids)) and set(ids) == {id(p) for p in backbone.parameters()}
    # stage k (1..4) is what the k-th feature map depends on beyond stage k-1: freezing the stem and the first k
    # stages leaves the first k maps without any trainable ancestor
    x = torch.randn(1, 3, 64, 64)
    for k in range(5):
        b = build_backbone(name)
        b.freeze(k)
        outs = b.train()(x)
        assert [o.requires_grad for o in outs] == [i >= k for i in range(4)], k


@pytest.mark.parametrize("name", BUILT)
def test_frozen_stages_get_no_gradient_and_keep_their_normalisation_statistics(name):
    torch.manual_seed(0)
    model = build_model(model_config("scrnet_r18", [f"backbone={name}", "num_classes=3", "channels=16",
                                                     "frozen_stages=2"]))
    frozen = [m for stage in model.backbone.stages()[:3] for m in stage]
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    stats = {n: b.clone() for n, b in model.backbone.named_buffers()}
    model.train()
    assert all(not m.training for f in frozen for m in f.modules())
    assert any(m.training for m in model.backbone.stages()[3][0].modules())
    out = model(torch.randn(2, 3, 64, 64))
    (out.out.sum() + sum(a.sum() for a in out.aux)).backward()
    for p in model.backbone.parameters():
        assert (p.grad is None) is (id(p) in frozen_ids)
    frozen_buffers = {n for n, _ in model.backbone.named_buffers()
                      if any(n.startswith(prefix) for prefix in _prefixes(model.backbone, frozen))}
    for n, b in model.backbone.named_buffers():
        if "running" in n:
            assert torch.equal(b, stats[n]) is (n in frozen_buffers), n
    assert model.train().training and not model.eval().training  # train()/eval() still return the module


def _prefixes(backbone: nn.Module, modules: list[nn.Module]) -> list[str]:
    names = {id(m): n for n, m in backbone.named_modules()}
    return [names[id(m)] + "." for m in modules]


def test_nothing_is_frozen_by_default_and_a_bad_value_is_one_line():
    model = build_model(model_config("scrnet_r18", ["num_classes=3", "channels=16"]))
    assert all(p.requires_grad for p in model.parameters())
    for bad in ("5", "-2"):
        with pytest.raises(ConfigError, match="model.frozen_stages must be an integer from -1"):
            model_config("scrnet_r18", [f"frozen_stages={bad}"])
    with pytest.raises(ConfigError, match="model.frozen_stages"):
        model_config("scrnet_r18", ["frozen_stages=true"])
