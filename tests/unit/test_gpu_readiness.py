"""Regression tests for the GPU-path problems, shown on the CPU: reduced-precision overflow and rounding (CPU
autocast reproduces them), OHEM and metrics without host synchronisation, BN folding, channels_last, resume with
another AMP setting, failed checkpoint writes, more torchrun processes than GPUs."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scrnet import create_model
from scrnet.config import LossConfig
from scrnet.distributed import init_distributed
from scrnet.engine.losses import SegmentationLoss
from scrnet.engine.trainer import load_scaler_state
from scrnet.errors import ConfigError
from scrnet.evaluation.boundary import BoundaryIoU
from scrnet.evaluation.metrics import ConfusionMatrix
from scrnet.models.crm import ChannelAttention
from scrnet.models.srm import base_grid, warp

ROOT = Path(__file__).resolve().parents[2]


def test_crm_channel_attention_does_not_overflow_in_fp16():
    # the reproduction at 64 channels instead of 960 (same overflow: the energy's diagonal sums over the
    # 2048 positions, 2048 * 68 * E[relu(z)^2] ~ 7e4 > float16's 65504), fast enough for the default suite
    torch.manual_seed(0)
    x = (68 ** 0.5) * torch.relu(torch.randn(1, 64, 32, 64))
    module = ChannelAttention()
    with torch.no_grad():
        ref = module(x)
        with torch.autocast("cpu", dtype=torch.float16):
            out = module(x)
    assert torch.isfinite(out).all()
    assert (out.float() - ref).abs().max() <= 1e-2 * ref.abs().max()  # gamma = 0: the residual, in fp16
    module.gamma.data.fill_(0.5)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.float16):
        assert torch.isfinite(module(x)).all()


def test_srm_grid_is_float32_and_exact_under_bf16():
    u = torch.randn(1, 4, 8, 2048)
    xs, ys = base_grid(u.bfloat16())
    assert xs.dtype == torch.float32 and torch.equal(xs.flatten(), torch.arange(2048) + 0.5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = warp(u, torch.zeros(1, 2, 8, 2048))
    assert out.dtype == torch.float32 and torch.equal(out, u)  # zero offsets: the input, bit for bit
    half = u.bfloat16()
    assert torch.equal(warp(half, torch.zeros(1, 2, 8, 2048)), half)  # a .bfloat16() model too


def test_fresh_scrnet_under_bf16_autocast_stays_close_to_float32():
    torch.manual_seed(0)
    model = create_model("scrnet_r18", num_classes=5, channels=32).eval()
    x = torch.randn(1, 3, 64, 512)
    with torch.no_grad():
        ref = model(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = model(x)
    assert torch.isfinite(got).all() and (got.float() - ref).abs().max() <= 0.1 * ref.abs().max()


def ohem_reference(cfg, logits, target):
    """The previous implementation (kthvalue over the valid pixels, host synchronisations), as it was."""
    logits = logits.float()
    pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = target != 255
    prob = logits.softmax(1).gather(1, target.clamp(max=logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
    prob = prob.masked_fill(~valid, 1.0)
    threshold = cfg.ohem_thresh
    n_valid = int(valid.sum())
    if 0 < cfg.ohem_min_kept and n_valid > 0:
        threshold = max(threshold, float(prob[valid].kthvalue(min(cfg.ohem_min_kept, n_valid)).values))
    valid = valid & (prob <= threshold)
    return pixel[valid].mean() if valid.any() else logits.sum() * 0.0


@pytest.mark.parametrize("min_kept,thresh,ignored", [(100, 0.7, 8), (5000, 0.7, 8), (10 ** 6, 0.7, 8),
                                                     (50, 0.01, 0), (0, 0.7, 4), (300, 1.0, 30)])
def test_ohem_topk_equals_the_kthvalue_version(min_kept, thresh, ignored):
    g = torch.Generator().manual_seed(min_kept)
    logits = torch.randn(2, 7, 32, 32, generator=g) * 3
    target = torch.randint(0, 7, (2, 32, 32), generator=g)
    target[:, :ignored] = 255
    cfg = LossConfig(ohem=True, ohem_min_kept=min_kept, ohem_thresh=thresh)
    new = SegmentationLoss(cfg, 7)(logits, target)
    assert abs(float(new) - float(ohem_reference(cfg, logits, target))) < 1e-6


def test_loss_with_every_pixel_ignored_is_zero_with_a_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    for ohem in (False, True):
        loss = SegmentationLoss(LossConfig(ohem=ohem), 3)(logits, torch.full((1, 4, 4), 255))
        assert float(loss.detach()) == 0.0
        loss.backward()


def blocky(h, w, k, seed):
    rng = np.random.default_rng(seed)
    small = rng.integers(0, k, (h // 4, w // 4))
    m = np.kron(small, np.ones((4, 4), np.int64)).astype(np.uint8)
    noise = rng.random((h, w)) < 0.02
    m[noise] = rng.integers(0, k, noise.sum())
    return m


@pytest.mark.parametrize("width", [1, 3])
def test_boundary_iou_device_path_equals_opencv(width):
    target, pred = blocky(64, 96, 6, 0), blocky(64, 96, 6, 1)
    target[:10] = 255
    target[20:30, 40:50] = 255
    a, b = BoundaryIoU(6, width), BoundaryIoU(6, width)
    a.update_opencv(pred, target)
    b.update_torch(torch.from_numpy(pred), torch.from_numpy(target))  # the CUDA path, run on the CPU
    assert a.union.sum() > 0
    assert (a.inter == b.inter).all() and (a.union == b.union).all()


def test_confusion_matrix_equals_bincount_and_defers_the_label_check():
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 5, (3, 40, 40), generator=g)
    target[:, :5] = 255
    pred = torch.randint(0, 5, (3, 40, 40), generator=g)
    cm = ConfusionMatrix(5)
    cm.update(pred, target)
    keep = target != 255
    expected = torch.bincount(target[keep] * 5 + pred[keep], minlength=25).view(5, 5)
    assert torch.equal(cm.matrix, expected)


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


def test_van_keeps_channels_last():
    model = create_model("scrnet_van_b1", num_classes=5, channels=32).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        feats = model.backbone(x)
        assert all(f.is_contiguous(memory_format=torch.channels_last) for f in feats)
        plain = model.backbone(torch.randn(1, 3, 64, 64))
    assert all(f.is_contiguous() for f in plain)


def test_resume_with_another_amp_setting_gets_a_fresh_scaler():
    enabled = torch.amp.GradScaler("cpu", enabled=True)
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert load_scaler_state(enabled, disabled.state_dict(), "fp16").startswith("the checkpoint was trained without")
    assert load_scaler_state(disabled, enabled.state_dict(), "bf16").startswith("the checkpoint was trained with")
    other = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert load_scaler_state(enabled, other.state_dict(), "fp16") is None and enabled.get_scale() == 8.0
    assert load_scaler_state(disabled, {}, "none") is None


def test_more_processes_than_gpus_fails_with_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"torchrun started 2 processes on this node but only 1 CUDA device\(s\) "
                                          r"are visible \(LOCAL_RANK 1\); use --nproc_per_node 1"):
        init_distributed("cuda")


def test_benchmark_rejects_a_zero_size_with_one_line():
    result = subprocess.run([sys.executable, "-m", "scrnet", "benchmark", "scrnet_r18", "--size", "0", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--size and --batch must be positive" in result.stderr


def test_gpu_check_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py cannot rot: its CPU sections run here (compile is in the slow variant)."""
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "gpu_check.py", "--quick", "--models", "scrnet_effl0", "fpn_r18",
                             "--skip", "compile", "--json", str(out)], cwd=ROOT / "benchmarks",
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(out.read_text())
    assert not [k for k, v in report.items() if isinstance(v, str) and v.startswith("FAILED")], report
    assert report["eval_amp_full_res"]["bf16"]["finite"]
    assert all(row["bf16"]["finite"] for row in report["amp_train_step"].values())
    assert report["ohem"]["loss_abs_diff"] < 1e-6 and report["eval_split"]["miou_equal"]
    assert max(report["channels_last"].values()) < 1e-4


@pytest.mark.slow
def test_gpu_check_with_compile_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, "gpu_check.py", "--quick", "--models", "scrnet_effl0", "--only",
                             "compile"], cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "FAILED" not in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
