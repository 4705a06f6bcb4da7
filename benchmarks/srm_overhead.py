"""SRM's latency overhead: scrnet_r18 and sfnet_r18 against the bilinear baseline fpn_r18, in one run on CPU.

    python benchmarks/srm_overhead.py [SPEC ...] [--size 512 1024] [--rounds 20] [--threads N]
        [--runtime torch|onnxruntime]

A SPEC is a zoo name with optional config overrides, ``NAME[:key=value,...]`` (e.g.
``scrnet_r18:srm.mask_input=hidden``); the first SPEC is the baseline of the ratios. Models are timed interleaved
(one call each per round), eval mode, BatchNorm folded, batch 1, float32, no grad. The goal is
scrnet_r18 / fpn_r18 <= 1.10 in eager PyTorch and <= 1.15 in onnxruntime (``--runtime onnxruntime``: each model
exported as ``scrnet export`` does and run in an onnxruntime session with as many threads as torch).
"""

import argparse
import tempfile

import torch

from scrnet.models import build_model, model_config
from scrnet.profiling.benchmark import conditions, onnxruntime_runner, summarize, time_interleaved
from scrnet.profiling.flops import compute_report

DEFAULT_SPECS = ["fpn_r18", "sfnet_r18", "scrnet_r18", "scrnet_r18:srm.mask_input=hidden"]


def parse_spec(spec: str):
    name, _, overrides = spec.partition(":")
    return model_config(name, [o for o in overrides.split(",") if o])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("specs", nargs="*", default=DEFAULT_SPECS, metavar="SPEC")
    parser.add_argument("--size", nargs=2, type=int, default=[512, 1024], metavar=("H", "W"))
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--runtime", choices=["torch", "onnxruntime"], default="torch")
    parser.add_argument("--sampler", choices=["gather", "gridsample"], default="gather",
                        help="how the exported graphs sample (scrnet export --sampler)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    x = torch.randn(1, 3, *args.size)
    configs = [parse_spec(s) for s in args.specs]
    models = [build_model(cfg).eval().fuse() for cfg in configs]  # BatchNorm folded, as export and benchmark do

    def call(model):
        def fn():
            with torch.inference_mode():
                model(x)
        return fn

    with tempfile.TemporaryDirectory() as folder:
        fns = [call(m) if args.runtime == "torch" else onnxruntime_runner(m, x, folder, sampler=args.sampler)
               for m in models]
        times = time_interleaved(fns, warmup=3, rounds=args.rounds)
    base = summarize(times[0])["ms_median"]
    runtime = "eager PyTorch" if args.runtime == "torch" else f"onnxruntime (sampler {args.sampler})"
    print(f"SRM overhead, {runtime}, CPU float32, BN folded, batch 1, {args.size[0]}x{args.size[1]}, {conditions()}")
    print(f"{'model':<36}{'GMACs':>8}{'ms median':>12}{'ms p90':>10}{'ratio':>8}")
    for spec, cfg, ms in zip(args.specs, configs, times):
        s = summarize(ms)
        gmacs = compute_report(cfg, tuple(args.size)).gmacs
        print(f"{spec:<36}{gmacs:>8.1f}{s['ms_median']:>12.1f}{s['ms_p90']:>10.1f}{s['ms_median'] / base:>8.3f}")


if __name__ == "__main__":
    main()
