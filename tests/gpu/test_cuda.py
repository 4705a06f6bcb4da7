"""CUDA checks (``pytest -m gpu`` on a machine with a GPU): the same contracts as the CPU tests, with tolerances
for CUDA's non-deterministic kernels. Everything else in the suite runs with the GPUs hidden."""

import pytest
import torch

from scrnet import create_model
from scrnet.config import LossConfig
from scrnet.engine.losses import SegmentationLoss
from scrnet.evaluation.boundary import BoundaryIoU
from scrnet.evaluation.metrics import ConfusionMatrix
from scrnet.models.crm import ChannelAttention
from scrnet.models.srm import warp

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.parametrize("name", ["scrnet_r18", "scrnet_van_b1", "scrnet_effl0", "fpn_r18", "sfnet_r18"])
def test_cuda_logits_match_cpu(name, monkeypatch):
    # cuDNN convolutions default to TF32 (torch.backends.cudnn.allow_tf32), which alone differs from the CPU by
    # ~1.6e-3 of the logits' range at this size (measured on an H100): compare true float32 here
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    torch.manual_seed(0)
    model = create_model(name, num_classes=19).eval()
    x = torch.randn(1, 3, 256, 512)
    with torch.no_grad():
        ref = model(x)
        got = model.cuda()(x.cuda()).cpu()
    assert (got - ref).abs().max() <= 1e-4 * ref.abs().max()


def test_crm_channel_attention_is_finite_under_fp16_autocast():
    x = (68 ** 0.5) * torch.relu(torch.randn(1, 960, 32, 64, device="cuda"))
    with torch.autocast("cuda", dtype=torch.float16):
        out = ChannelAttention().cuda()(x)
    assert torch.isfinite(out).all()


def test_srm_zero_offsets_reproduce_the_input_under_fp16():
    u = torch.randn(1, 8, 64, 2048, device="cuda").half()
    with torch.autocast("cuda", dtype=torch.float16):
        out = warp(u, torch.zeros(1, 2, 64, 2048, device="cuda"))
    assert out.dtype == torch.float16 and torch.equal(out, u)


def test_ohem_topk_equals_kthvalue_on_cuda():
    logits = torch.randn(4, 19, 256, 256, device="cuda")
    target = torch.randint(0, 19, (4, 256, 256), device="cuda")
    target[:, :16] = 255
    loss = SegmentationLoss(LossConfig(ohem=True, ohem_min_kept=5000), 19).cuda()(logits, target)
    cpu = SegmentationLoss(LossConfig(ohem=True, ohem_min_kept=5000), 19)(logits.cpu(), target.cpu())
    assert abs(float(loss) - float(cpu)) < 1e-5


def test_device_metrics_equal_cpu_counts():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (96, 128), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1)
    target[:20] = 255
    pred = torch.randint(0, 5, (96, 128), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1)
    cpu_b, gpu_b = BoundaryIoU(5, 3), BoundaryIoU(5, 3, device="cuda")
    cpu_b.update(pred, target)
    gpu_b.update(pred.cuda(), target.cuda())
    assert (cpu_b.inter == gpu_b.inter).all() and (cpu_b.union == gpu_b.union).all()
    cpu_m, gpu_m = ConfusionMatrix(5), ConfusionMatrix(5, device="cuda")
    cpu_m.update(pred, target)
    gpu_m.update(pred.cuda(), target.cuda())
    assert torch.equal(cpu_m.matrix, gpu_m.matrix.cpu())


@pytest.mark.parametrize("dense", [False, True])
def test_published_boundary_metrics_on_cuda_equal_the_cpu(dense, monkeypatch):
    import scrnet.evaluation.published_boundary as published

    monkeypatch.setattr(published, "DENSE_QUERIES_PER_PIXEL", 0.0 if dense else float("inf"))
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 7, (64, 128), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1)
    target[:30, :50] = 255
    pred = torch.randint(0, 7, (128, 256), generator=g).repeat_interleave(2, 0).repeat_interleave(2, 1)
    cpu, gpu = published.PublishedBoundaryMetrics(7), published.PublishedBoundaryMetrics(7, device="cuda")
    cpu.update(pred, target)
    gpu.update(pred.cuda(), target.cuda())
    for name in ("biou", "f", "band_cm"):
        assert (getattr(cpu, name) == getattr(gpu, name)).all(), name
