"""CPU latency of the zoo in PyTorch eager and in onnxruntime, one interleaved run at 512x1024, batch 1.

    python benchmarks/deploy_speed.py [--size 512 1024] [--rounds 10]

Prints each model's median latency in both runtimes, the onnxruntime speed-up per model (goal >= 1.2x) and the SRM
overhead scrnet_r18 / fpn_r18 in each runtime (goal <= 1.10). Same code as `scrnet benchmark ... --runtime torch
onnxruntime`.
"""

import argparse

from scrnet.profiling.benchmark import benchmark, format_benchmark

MODELS = ["fpn_r18", "sfnet_r18", "scrnet_r18", "scrnet_effl0", "scrnet_van_b1"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", nargs=2, type=int, default=[512, 1024])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    specs = [(m, r) for m in MODELS for r in ("torch", "onnxruntime")]
    report = benchmark(specs, tuple(args.size), rounds=args.rounds, measure_memory=False)
    print(format_benchmark(report))
    ms = {(r["model"], r["runtime"]): r["ms_median"] for r in report["results"]}
    print("\nonnxruntime speed-up over eager (goal >= 1.2x):")
    for m in MODELS:
        print(f"  {m:<16}{ms[(m, 'torch')] / ms[(m, 'onnxruntime')]:.2f}x")
    for runtime in ("torch", "onnxruntime"):
        print(f"scrnet_r18 / fpn_r18 in {runtime}: {ms[('scrnet_r18', runtime)] / ms[('fpn_r18', runtime)]:.3f} "
              f"(sfnet_r18 / fpn_r18: {ms[('sfnet_r18', runtime)] / ms[('fpn_r18', runtime)]:.3f})")


if __name__ == "__main__":
    main()
