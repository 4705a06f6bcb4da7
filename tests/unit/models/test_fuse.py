"""BN folding (``SCRNet.fuse``): every Conv-BN pair folded, logits kept."""

import pytest
import torch

import scrnet
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


def test_fuse_checks_the_fold_with_tf32_off_and_restores_the_settings():
    """On CUDA with TF32 on (what training and the benchmark set), rounding alone exceeded the fold check's 1e-4
    (1.2e-3 on an H200): the check runs in exact float32, and the caller's settings come back afterwards."""
    from scrnet.runtime import configure_cuda, current_backend_settings

    seen = []
    model = create_model("scrnet_r18", num_classes=5, channels=32).eval()
    model.register_forward_pre_hook(lambda m, i: seen.append(current_backend_settings()))
    saved = torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    before = configure_cuda(benchmark=False, tf32=True)
    try:
        model.fuse()
        after = current_backend_settings()
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = saved[:2]
        torch.set_float32_matmul_precision(saved[2])
    assert seen and all(s.matmul_precision == "highest" and not s.cudnn_tf32 for s in seen)
    assert after == before and before.cudnn_tf32 and before.matmul_precision == "high"


@pytest.mark.parametrize("name", scrnet.list_models())
def test_fuse_leaves_no_batchnorm_after_a_conv_in_the_eval_network(name):
    """Every BatchNorm that follows a convolution is folded, SRM's offset branch included (its 1x1 conv is applied
    functionally, in two halves); what remains are the auxiliary heads (train mode only) and VAN's pre-norms,
    which no convolution precedes."""
    torch.manual_seed(0)
    model = create_model(name, num_classes=5, channels=32).eval()
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        ref = model(x)
        model.fuse()
        got = model(x)
    left = [k for k, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)
            and not k.startswith("decoder.aux_heads") and not k.endswith((".norm1", ".norm2"))]
    assert left == []
    assert all(not isinstance(getattr(srm, "offset_bn", None), torch.nn.BatchNorm2d) for srm in model.decoder.refine)
    assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()
