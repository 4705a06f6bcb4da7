"""VAN-B1's depth-wise convolutions on the GPU, and the phase-split dilated conv against the native one:
`python benchmarks/van_lka.py [--quick] [--json OUT]`.

1. Each depth-wise conv of one VAN-B1 block at every stage's shape for a 1024x2048 input (5x5, 7x7 dilation 3
   native and phase-split, the MLP's 3x3), float16, timed alone (median of interleaved calls).
2. `scrnet_van_b1` end to end with the dilated convs native and phase-split (float16 weights, BatchNorm folded,
   batch 1, 1024x2048), interleaved in one run: replayed from CUDA graphs, and compiled (mode reduce-overhead);
   the two models' logits compared.

On the CPU (--quick: tiny sizes, float32/bfloat16, eager only) it runs inside the default tests so it cannot rot.
"""

import argparse
import copy
import json
import statistics
from pathlib import Path

import torch

from scrnet import create_model
from scrnet.models.backbones.van import LKA, Mlp, dilated_depthwise_by_phases, split_dilated_convs
from scrnet.profiling.benchmark import compiled, cuda_graphed, time_interleaved
from scrnet.runtime import configure_cuda

STAGES = ((64, 4, 8), (128, 8, 8), (320, 16, 4), (512, 32, 4))  # VAN-B1: channels, stride, MLP ratio


def conv_table(size, dtype, device, rounds) -> list[dict]:
    rows = []
    for dim, stride, ratio in STAGES:
        h, w = size[0] // stride, size[1] // stride
        lka, mlp = LKA(dim).to(device, dtype).eval(), Mlp(dim, dim * ratio).dwconv.to(device, dtype).eval()
        x = torch.randn(1, dim, h, w, device=device, dtype=dtype)
        hidden = torch.randn(1, dim * ratio, h, w, device=device, dtype=dtype)
        fns = {"5x5": lambda: lka.conv0(x), "7x7 d3 native": lambda: lka.conv_spatial(x),
               "7x7 d3 phases": lambda: dilated_depthwise_by_phases(lka.conv_spatial, x),
               "3x3 mlp": lambda: mlp(hidden)}
        with torch.inference_mode():
            ref, got = fns["7x7 d3 native"](), fns["7x7 d3 phases"]()
            diff = float((ref - got).abs().max() / ref.abs().max())
            times = time_interleaved(list(fns.values()), warmup=3, rounds=rounds,
                                     sync=torch.cuda.synchronize if device == "cuda" else None)
        row = {"channels": dim, "size": [h, w], "phases_vs_native_rel_diff": diff}
        row.update({name: statistics.median(t) for name, t in zip(fns, times)})
        rows.append(row)
    return rows


def end_to_end(size, dtype, device, rounds, min_time_s, compile_too) -> dict:
    native = create_model("scrnet_van_b1", num_classes=19).eval().fuse().to(device, dtype)
    split = copy.deepcopy(native)
    assert split_dilated_convs(split) == 10
    x = torch.randn(1, 3, *size, device=device, dtype=dtype)
    out = {}
    with torch.inference_mode():
        a, b = native(x).float(), split(x).float()
    out["logits_rel_diff"] = float((a - b).abs().max() / a.abs().max())
    settings = {"eager": lambda m: (lambda: m(x))}
    if device == "cuda":
        settings = {"cuda_graph": lambda m: cuda_graphed(lambda: m(x))[0]}
        if compile_too:
            settings["compile_reduce_overhead"] = lambda m: (lambda f: (lambda: f(x)))(compiled(m, "reduce-overhead"))
    for name, make in settings.items():
        with torch.inference_mode():
            fns = [make(native), make(split)]
            times = time_interleaved(fns, warmup=10 if device == "cuda" else 1, rounds=rounds, min_time_s=min_time_s,
                                     sync=torch.cuda.synchronize if device == "cuda" else None)
        native_ms, split_ms = (statistics.median(t) for t in times)
        out[name] = {"native_ms": native_ms, "split_ms": split_ms, "split_over_native": split_ms / native_ms,
                     "split_fps": 1000.0 / split_ms}
        print(f"  {name:<24} native {native_ms:6.2f} ms  phase-split {split_ms:6.2f} ms  ratio "
              f"{split_ms / native_ms:.3f}", flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        configure_cuda(benchmark=True, tf32=True)
    dtype = torch.float16 if device == "cuda" else (torch.bfloat16 if args.quick else torch.float32)
    size = (64, 128) if args.quick else (1024, 2048)
    report = {"device": torch.cuda.get_device_name() if device == "cuda" else "cpu", "torch": torch.__version__,
              "dtype": str(dtype), "size": list(size)}
    print(f"{report['device']}, torch {torch.__version__}, {dtype}, input {size[0]}x{size[1]}")
    report["convs_ms"] = conv_table(size, dtype, device, 2 if args.quick else 50)
    for row in report["convs_ms"]:
        print("  " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
    report["end_to_end"] = end_to_end(size, dtype, device, 2 if args.quick else 100, 0 if args.quick else 5.0,
                                      not args.no_compile)
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
