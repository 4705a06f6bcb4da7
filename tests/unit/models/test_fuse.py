"""BN folding (``SCRNet.fuse``): every Conv-BN pair folded, logits kept."""

import pytest
import torch

from scrnet import create_model


@pytest.mark.parametrize("name", ["scrnet_r18", "scrnet_effl0", "scrnet_van_b1"])
def test_fuse_folds_conv_bn_and_keeps_the_logits(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, channels=32).eval()
    for m in model.modules():  # non-trivial statistics, as after training
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    x = torch.randn(1, 3, 96, 160)
    with torch.no_grad():
        ref = model(x)
        before = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
        model.fuse()
        got = model(x)
    after = sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert model.fused_pairs > 0 and after == before - model.fused_pairs
    assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()
    from scrnet.models.fuse import fuse_conv_bn

    with pytest.raises(ValueError, match="eval mode"):
        fuse_conv_bn(create_model(name, num_classes=5, channels=32).train(), x)
