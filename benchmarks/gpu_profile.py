"""Where one forward pass of a model spends its time: `python benchmarks/gpu_profile.py MODEL [--size H W]`.

Two views, both in eval mode with BatchNorm folded, batch 1, weights and input cast to --dtype (as the deployment
rows of gpu_check.py's fps_deploy run):
- parts: the backbone alone and the whole model, each replayed from a CUDA graph (kernel time only, no launch
  overhead), so the decoder's share is their difference (on the CPU: eager calls, no graph);
- kernels: torch.profiler over --calls calls (eager, or compiled with --compile MODE), the ops with the most device
  time (CPU time on the CPU), with their share of the total. --split-dilation profiles VAN with its dilated
  depth-wise convs computed on input phases.
"""

import argparse
import json
from pathlib import Path

import torch

from scrnet import create_model
from scrnet.profiling.benchmark import DTYPES, compiled, cuda_graphed, summarize, time_interleaved
from scrnet.runtime import configure_cuda


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model")
    parser.add_argument("--size", nargs=2, type=int, default=[1024, 2048])
    parser.add_argument("--dtype", choices=list(DTYPES), default="float16")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--split-dilation", action="store_true",
                        help="VAN's dilated depth-wise convs on input phases (scrnet.models.backbones.van)")
    parser.add_argument("--compile", metavar="MODE", help="profile the kernels of torch.compile(MODE) instead of the "
                        "eager ones (the parts split is then skipped)")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    if cuda:
        configure_cuda(benchmark=True, tf32=True)
    dtype = DTYPES[args.dtype]
    model = create_model(args.model, num_classes=19).eval().fuse().to(args.device, dtype)
    if args.split_dilation:
        from scrnet.models.backbones.van import split_dilated_convs

        split_dilated_convs(model)
    x = torch.randn(1, 3, *args.size, device=args.device, dtype=dtype)
    net = compiled(model, args.compile) if args.compile else model

    def whole():
        with torch.inference_mode():
            return net(x)

    def backbone():
        with torch.inference_mode():
            return model.backbone(x)[-1]

    report = {"model": args.model, "size": args.size, "dtype": args.dtype, "device": args.device,
              "device_name": torch.cuda.get_device_name() if cuda else "cpu", "torch": torch.__version__,
              "split_dilation": args.split_dilation, "compile": args.compile}
    parts = {}
    for name, fn in () if args.compile else (("backbone", backbone), ("whole", whole)):
        if cuda:
            fn, _ = cuda_graphed(fn)
        else:
            fn()
        times = time_interleaved([fn], warmup=0, rounds=args.calls, sync=torch.cuda.synchronize if cuda else None)
        parts[name] = summarize(times[0])["ms_median"]
    print(f"{report['device_name']}, torch {torch.__version__}, {args.model}, {args.size[0]}x{args.size[1]}, "
          f"{args.dtype} weights, BN folded, split_dilation={args.split_dilation}, compile={args.compile}")
    if parts:
        parts["decoder_and_head"] = parts["whole"] - parts["backbone"]
        report["parts_ms"] = parts
        print(f"parts, {'CUDA graph replay' if cuda else 'eager'}, median of {args.calls}:")
        for name, ms in parts.items():
            print(f"  {name:<18}{ms:8.2f} ms  {100 * ms / parts['whole']:5.1f}%")
    else:
        for _ in range(3):  # compile and warm up outside the profile
            whole()

    activities = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(args.calls):
            whole()
        if cuda:
            torch.cuda.synchronize()
    key = "self_device_time_total" if cuda else "self_cpu_time_total"
    events = [e for e in prof.key_averages() if getattr(e, key, 0) > 0]
    total = sum(getattr(e, key) for e in events) or 1.0
    events.sort(key=lambda e: getattr(e, key), reverse=True)
    rows = [{"op": e.key, "ms_per_call": getattr(e, key) / 1e3 / args.calls, "share": getattr(e, key) / total,
             "count_per_call": e.count / args.calls} for e in events[:args.rows]]
    report["ops"] = rows
    print(f"ops by self {'device' if cuda else 'CPU'} time ({args.calls} calls):")
    for r in rows:
        print(f"  {r['ms_per_call']:8.3f} ms {100 * r['share']:5.1f}% x{r['count_per_call']:<5g} {r['op'][:90]}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
