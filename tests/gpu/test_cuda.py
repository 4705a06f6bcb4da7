"""CUDA checks (``pytest -m gpu`` on a machine with a GPU): the same contracts as the CPU tests, with tolerances
for CUDA's non-deterministic kernels. Everything else in the suite runs with the GPUs hidden."""

import pytest
import torch

from scrnet import create_model
from scrnet.config import LossConfig
from scrnet.engine.losses import SegmentationLoss
from scrnet.evaluation.boundary import BIoUStar
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
    cpu_b, gpu_b = BIoUStar(5, 3), BIoUStar(5, 3, device="cuda")
    cpu_b.update(pred, target)
    gpu_b.update(pred.cuda(), target.cuda())
    assert (cpu_b.inter == gpu_b.inter).all() and (cpu_b.union == gpu_b.union).all()
    cpu_m, gpu_m = ConfusionMatrix(5), ConfusionMatrix(5, device="cuda")
    cpu_m.update(pred, target)
    gpu_m.update(pred.cuda(), target.cuda())
    assert torch.equal(cpu_m.matrix, gpu_m.matrix.cpu())


@pytest.mark.parametrize("method", ["search", "search dense", "transform"])
def test_published_boundary_metrics_on_cuda_equal_the_cpu(method, monkeypatch):
    import scrnet.evaluation.published_boundary as published

    monkeypatch.setattr(published, "DENSE_QUERIES_PER_PIXEL", 0.0 if method.endswith("dense") else float("inf"))
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, 7, (64, 128), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1)
    target[:30, :50] = 255
    pred = torch.randint(0, 7, (128, 256), generator=g).repeat_interleave(2, 0).repeat_interleave(2, 1)
    cpu = published.PublishedBoundaryMetrics(7)
    gpu = published.PublishedBoundaryMetrics(7, device="cuda", f_method=method.split()[0])
    cpu.update(pred, target)
    gpu.update(pred.cuda(), target.cuda())
    for name in ("biou", "f", "band_cm"):
        assert (getattr(cpu, name) == getattr(gpu, name)).all(), name


def test_metric_updates_never_wait_for_the_gpu():
    """Every metric's per-image update on CUDA with synchronising calls made errors."""
    import scrnet.evaluation.published_boundary as published

    g = torch.Generator().manual_seed(2)
    target = torch.randint(0, 7, (64, 128), generator=g).repeat_interleave(4, 0).repeat_interleave(4, 1).cuda()
    target[:30, :50] = 255
    pred = torch.randint(0, 7, (256, 512), generator=g).cuda()
    metrics = [ConfusionMatrix(7, device="cuda"), BIoUStar(7, 3, device="cuda"),
               published.PublishedBoundaryMetrics(7, device="cuda")]
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for m in metrics:
            m.update(pred, target)
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.parametrize("keep_per_image", [False, True])
def test_evaluation_synchronises_a_fixed_number_of_times_whatever_the_number_of_images(tmp_path, keep_per_image):
    """``evaluate`` over 2 and over 6 images under ``torch.cuda.set_sync_debug_mode("warn")``: the synchronising
    calls left (set-up, the final read-back) do not grow with the images; each one is listed on failure."""
    import warnings

    from scrnet.config import EvalConfig
    from scrnet.data.build import open_source
    from scrnet.data.dataset import SegmentationDataset
    from scrnet.data.synthetic import generate_synthetic
    from scrnet.data.transforms import EvalTransform, EvalTransformConfig, Normalize
    from scrnet.evaluation.evaluate import evaluate

    root = generate_synthetic(tmp_path / "data", num_train=1, num_val=6, size=(128, 256), seed=0)
    dataset = SegmentationDataset(open_source("folder", root, "val"), EvalTransform(EvalTransformConfig()))
    torch.manual_seed(0)
    model = create_model("scrnet_r18", num_classes=9, channels=16).cuda()
    normalize = Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    cfg = EvalConfig()
    cfg.boundary.enabled = True

    def syncs(limit: int) -> list[str]:
        evaluate(model, dataset, torch.device("cuda"), cfg, normalize, limit=limit, keep_per_image=keep_per_image)
        torch.cuda.synchronize()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                evaluate(model, dataset, torch.device("cuda"), cfg, normalize, limit=limit,
                         keep_per_image=keep_per_image)
            finally:
                torch.cuda.set_sync_debug_mode("default")
        return [str(w.message) for w in caught if "synchroniz" in str(w.message)]

    two, six = syncs(2), syncs(6)
    assert len(six) == len(two), "\n".join(six)
