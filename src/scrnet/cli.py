"""The ``scrnet`` command: parses arguments and calls the library. Errors are one line: exit code 2 for bad usage
(unknown model, bad option or value, a file that does not fit), 1 for a run that failed; :func:`exit_status` is the
one table, and commands let the library's errors through to it."""

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from .errors import ScrnetError

EPILOG_MODELS = """examples:
  scrnet models
  scrnet models --json models.json
"""
EPILOG_FLOPS = """examples:
  scrnet flops scrnet_r18
  scrnet flops scrnet_van_b1 --size 512 1024 --json
  scrnet flops scrnet_r18 srm.mode=pixel context.type=ppm     # an ablation, as config overrides
  scrnet flops configs/my_run.yaml                            # the 'model' section of a config file
"""


EPILOG_DATA_CHECK = """examples:
  scrnet data check --data.type cityscapes --data.root data/cityscapes --split val
  scrnet data check --data.type folder --data.root data/mine --split train --json check.json

Exit code 0 when no problem was found, 1 when problems were found (all are listed), 2 for bad usage.
"""
EPILOG_DATA_SYNTH = """examples:
  scrnet data synth data/synthetic                       # 200 train + 50 val scenes of 256x512, seed 0
  scrnet data synth /tmp/tiny --num-train 8 --num-val 4 --size 128 256 --seed 3
"""


EPILOG_TRAIN = """examples:
  scrnet train configs/synthetic/scrnet_effl0.yaml                       # minutes on 2 CPU cores
  scrnet train configs/cityscapes/scrnet_r18.yaml data.root=/data/cityscapes --work-dir runs/r18
  scrnet train configs/cityscapes/scrnet_r18.yaml --work-dir runs/r18 --resume   # continue exactly
  torchrun --nproc_per_node 8 -m scrnet train configs/cityscapes/scrnet_r18.yaml --work-dir runs/r18

Writes WORK_DIR/config.yaml (the resolved config), WORK_DIR/metrics.jsonl and WORK_DIR/checkpoints/.
Ctrl-C or SIGTERM saves a checkpoint and stops; --resume picks up from the newest checkpoint.
"""


EPILOG_EVAL = """examples:
  scrnet eval runs/r18/checkpoints/best.pth                                  # the data set of its config, val split
  scrnet eval best.pth --data.root /data/cityscapes --mode slide --json result.json
  scrnet eval best.pth --tta eval.scales=[0.75,1.0,1.25]                     # multi-scale + flip
  torchrun --nproc_per_node 4 -m scrnet eval best.pth                        # split over processes
  scrnet eval best.pth --report report.html                                  # tables, plots, worst images
"""
EPILOG_PREDICT = """examples:
  scrnet predict best.pth street.jpg --out preds                             # preds/street.png (overlay)
  scrnet predict best.pth photos/ "more/**/*.png" --format color --out preds # folders (recursive) and globs
  scrnet predict best.pth drive.mp4 --out preds                              # preds/drive.mp4, annotated
  scrnet predict best.pth data/cityscapes/leftImg8bit/test --format labelid --out results   # for the server
  scrnet predict best.pth street.jpg --show-offsets --out preds              # also preds/street_offsets.png

Exit code 1 when some inputs could not be read (each is named; the others are written).
"""


EPILOG_EXPORT = """examples:
  scrnet export best.pth --onnx model.onnx --check                 # export at 512x1024, check at two sizes
  scrnet export best.pth --onnx model.onnx --size 1024 2048 --opset 18
  scrnet export best.pth --onnx model_int8.onnx --int8 --calib data/cityscapes/leftImg8bit/train --calib-images 64
  scrnet export best.pth --onnx model_fp16.onnx --fp16
  scrnet eval model_int8.onnx --json int8.json       # score the exported file like its checkpoint

The graph has dynamic batch, height and width; --check compares onnxruntime with PyTorch at the export size and
at an odd size (max |logit difference| <= 1e-4, argmax agreement >= 99.9%) and exits with 1 naming the difference.
"""
EPILOG_PUBLISH = """examples:
  scrnet eval runs/r18/checkpoints/best.pth --json eval.json
  scrnet publish runs/r18/checkpoints/best.pth hub/scrnet-r18-cityscapes --eval eval.json
  scrnet publish best.pth hub/scrnet-r18-cityscapes --eval eval.json --push my-org/scrnet-r18-cityscapes --dry-run

Writes OUT_DIR/model.safetensors (eval weights), OUT_DIR/config.json and OUT_DIR/README.md (a model card with the
Hub's metadata). Load it with scrnet.from_pretrained("OUT_DIR"), scrnet.Segmenter("hf://my-org/NAME"), or pass the
folder or hf://ORG/NAME[@REVISION] wherever a command takes a CHECKPOINT.
"""
EPILOG_BENCHMARK = """examples:
  scrnet benchmark scrnet_r18 fpn_r18 --size 512 1024                      # interleaved, ratios to the first
  scrnet benchmark scrnet_effl0 --runtime torch onnxruntime --json bench.json
  scrnet benchmark scrnet_van_b1 scrnet_r18 --device cuda --dtype float16 --channels-last --compile
  scrnet benchmark scrnet_van_b1 --device cuda --dtype float16 --precision cast --cuda-graph   # deployment-style
  scrnet benchmark scrnet_van_b1 --device cuda --dtype float16 --precision cast \\
      --compile reduce-overhead --split-dilation                                  # 198 FPS on an H200
  scrnet benchmark fpn_r18 runs/r18/checkpoints/best.pth --size 512 1024   # a trained model: checkpoint or folder
"""


EPILOG_DEMO = """examples:
  scrnet demo                      # about 5 minutes on 2 CPU cores, writes to demo_out/
  scrnet demo --quick --out /tmp/d # under a minute (a smoke test)
"""
EPILOG_COMPARE = """examples:
  scrnet compare work_dirs/study/*/seed*                          # work dirs holding eval.json (scrnet study's cells)
  scrnet compare a_seed*.json b_seed*.json --baseline model.srm.mode=bilinear --plot forest.png
  scrnet compare runs/*/ --json compare.json --markdown compare.md --margin 0.5   # "equivalent" within ±0.5 points
  scrnet compare work_dirs/study/*/seed* --plan work_dirs/study/plan.yaml --looks work_dirs/study/looks.jsonl

Groups are the runs' resolved configs without train.seed; labels are the keys that differ between groups. Each
group is compared with the baseline (the first group unless --baseline names a run, a label or key=value pairs):
paired t over the seeds both groups have (Welch's t when they share none) plus a leave-one-image-out jackknife image
term, Satterthwaite degrees of freedom. The verdicts are corrected for the family they belong to (Holm): every
comparison of the call (groups x metrics), or with --plan the plan's pairs x metrics at the level of the plan's look,
other comparisons "exploratory". "better"/"worse" need --min-seeds seeds (default 5): with fewer the verdict is
"inconclusive (N seeds)"; an inconclusive comparison says how many paired seeds would decide it.
"""
EPILOG_STUDY = """examples:
  scrnet study configs/synthetic/scrnet_effl0.yaml --variants configs/ablations/srm_mode/*.yaml \\
      --seeds 0 1 2 3 4 --work-dir work_dirs/study_srm
  scrnet study configs/synthetic/scrnet_effl0.yaml --vary model.srm.mode=bilinear,neighbor --seeds 0 1 \\
      --work-dir work_dirs/s train.max_iters=100
  scrnet study configs/cityscapes/scrnet_r18.yaml --vary model.context.type=ppm,crm --seeds 0 1 2 3 4 \\
      --work-dir /scratch/study --print-commands > cells.sh     # one line per cell, for a SLURM array
  scrnet study configs/synthetic/scrnet_effl0.yaml --vary model.srm.mode=bilinear,neighbor --seeds 0 1 2 3 4 \\
      --work-dir work_dirs/srm --plan plan.yaml                 # a plan fixed before the first run

Each cell is an ordinary `scrnet train` (with --resume) and `scrnet eval` of its final checkpoint into
CELL/eval.json. A cell whose eval.json holds the planned config is skipped, so a killed study continues where it
stopped; a cell trained with another config (an edited variant file, another max_iters) is refused, naming the
keys, unless --rerun-stale, which moves it aside to WORK_DIR/stale-N/CELL and trains it again. --plan PLAN.yaml
fixes the study's plan (comparisons, metrics, seeds, looks, margin) in WORK_DIR/plan.yaml before the first cell
runs; the final compare tests the plan's family and records each look in WORK_DIR/looks.jsonl.
"""


def add_verdict_options(p) -> None:
    p.add_argument("--min-seeds", type=int, default=5,
                   help="fewest seeds for a verdict other than inconclusive (default 5, at least 2)")
    p.add_argument("--margin", type=float, metavar="POINTS",
                   help="say \"equivalent\" when both one-sided tests against ±POINTS reject (the 90%% interval "
                        "inside ±POINTS, Holm-adjusted), \"no worse\" when the one against -POINTS does (e.g. 0.5)")
    p.add_argument("--effect", type=float, default=0.5, metavar="POINTS",
                   help="size the seeds an inconclusive comparison needs for this difference when no --margin is "
                        "given (default 0.5)")
    p.add_argument("--plan", metavar="PLAN.yaml",
                   help="the study's plan (pairs, metrics, seeds, looks, margin, alpha), fixed before its runs: the "
                        "family Holm corrects over and the looks' levels; other comparisons are exploratory")
    p.add_argument("--allow-mixed-metrics", action="store_true",
                   help="pool runs scored by different metric definitions (metrics_version), refused otherwise")
    p.add_argument("--unpaired", action="store_true",
                   help="compare groups without pairing runs by seed (Welch); needed when seeds only partly "
                        "overlap")


class RunFailed(Exception):
    """A run that failed in a way already reported: exit code 1 without a further message."""


class UsageError(Exception):
    """Bad usage the command itself finds in its arguments: reported in one line with exit code 2."""


def exit_status(exc: BaseException) -> int | None:
    """The one table of exit codes: 2 for bad usage (the command's own :class:`UsageError`, a scrnet error whose class
    says ``usage``, a file the user named that does not exist), 1 for any other scrnet error (a run that failed: a
    data error met while running, an aborted training, a failed check); ``None`` for anything else, a bug."""
    if isinstance(exc, (UsageError, FileNotFoundError)) or (isinstance(exc, ScrnetError) and exc.usage):
        return 2
    return 1 if isinstance(exc, ScrnetError) else None


def _resolve_model(spec: str, overrides: list[str]):
    from .config import load_model_config
    from .models import model_config

    if spec.endswith((".yaml", ".yml")):
        if not Path(spec).is_file():
            raise UsageError(f"config file not found: {spec}")
        return load_model_config(spec, overrides)
    return model_config(spec, overrides)


def cmd_models(args) -> None:
    from .profiling.flops import zoo_table

    rows, weights = zoo_table()
    if args.json:
        Path(args.json).write_text(json.dumps({"models": rows, "weights": weights}, indent=2) + "\n")
    print(f"{'model':<16}{'backbone':<20}{'width':>6}{'params (M)':>12}{'GMACs @1024x2048':>18}")
    for r in rows:
        print(f"{r['model']:<16}{r['backbone']:<20}{r['channels']:>6}{r['params_m']:>12.2f}{r['gmacs']:>18.1f}")
    print("\npretrained backbone weights (backbone_weights=imagenet); accuracy as reported by the publisher")
    print(f"{'weights':<30}{'params (M)':>11}{'GMACs @224':>12}{'top-1':>7}  {'licence':<14}{'source'}")
    for w in weights:
        source = w["url"] or w["file"]
        print(f"{w['name']:<30}{w['num_params'] / 1e6:>11.2f}{w['gmacs']:>12.3f}"
              f"{w['metrics'].get('ImageNet-1K top-1', float('nan')):>7.1f}  {w['license']:<14}{source}")


def cmd_flops(args) -> None:
    from .profiling.flops import compute_report, format_report

    cfg = _resolve_model(args.model, args.overrides)
    if min(args.size) < 1:
        raise UsageError(f"--size must be two positive integers H W, got {args.size}")
    report = compute_report(cfg, tuple(args.size))
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))


def cmd_data_check(args) -> None:
    from .data.check import check_dataset, format_check

    report = check_dataset(args.data_type, args.data_root, args.split, progress=sys.stderr.isatty())
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(format_check(report))
    if report.problems:
        raise RunFailed


def cmd_data_synth(args) -> None:
    from .data.synthetic import generate_synthetic

    if args.num_train < 0 or args.num_val < 0 or min(args.size) < 32:
        raise UsageError("--num-train/--num-val must be >= 0 and --size at least 32 32")
    out = generate_synthetic(args.out, args.num_train, args.num_val, tuple(args.size), args.seed)
    print(f"wrote {args.num_train} train and {args.num_val} val scenes of {args.size[0]}x{args.size[1]} to {out} "
          f"(folder layout; check it with: scrnet data check --data.type folder --data.root {out})")


def cmd_train(args) -> None:
    from .config import load_config
    from .engine.trainer import train

    if not Path(args.config).is_file():
        raise UsageError(f"config file not found: {args.config}")
    cfg = load_config(args.config, args.overrides)
    work_dir = Path(args.work_dir or Path("work_dirs") / Path(args.config).stem)
    result = train(cfg, work_dir, resume=args.resume)
    if result.stopped_by_signal is not None:
        if not result.is_main:
            raise RunFailed(128 + result.stopped_by_signal)
        print(f"stopped by signal {result.stopped_by_signal} at iteration {result.iteration}; checkpoint saved in "
              f"{work_dir / 'checkpoints'}; continue with --resume", file=sys.stderr)
        raise RunFailed(128 + result.stopped_by_signal)
    if not result.is_main:
        return
    best = "n/a" if result.best_miou is None else f"{result.best_miou:.4f} at iteration {result.best_iteration}"
    print(f"finished {result.iteration} iterations; best val mIoU {best}; checkpoints in {work_dir / 'checkpoints'}")


def cmd_eval(args) -> None:
    from .evaluation.run import evaluate_checkpoint, format_table

    overrides = list(args.overrides)
    for key, value in (("data.type", args.data_type), ("data.root", args.data_root), ("eval.mode", args.mode)):
        if value is not None:
            overrides.append(f"{key}={value}")
    if args.tta:
        overrides.append("eval.tta=true")
    if args.report:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--report draws its plots with matplotlib: pip install 'scrnet[report]'") from None
    run = evaluate_checkpoint(args.checkpoint, overrides, args.split, args.device, sys.stderr.isatty(),
                              args.workers, keep_per_image=bool(args.report or args.json))
    if not run.is_main:
        return
    summary = run.summary()
    if args.json:
        run.save_json(args.json, args.checkpoint)
    cfg = run.config
    print(f"{cfg.data.type} {summary['split']} at {cfg.data.root}, mode {cfg.eval.mode}"
          f"{', multi-scale + flip' if cfg.eval.tta else ''}, BIoU* band {cfg.eval.boundary_width} px"
          + (f", Boundary IoU ratio {cfg.eval.boundary.dilation_ratio}, F tolerances "
             f"{cfg.eval.boundary.f_tolerances} px" if cfg.eval.boundary.enabled else ""))
    print(format_table(summary))
    if args.report:
        from .evaluation.report import write_report

        path = write_report(run, summary, args.report, args.checkpoint, args.report_worst)
        print(f"wrote {path} (self-contained HTML: open it in a browser)")


def cmd_predict(args) -> None:
    import torch

    from .inference.predict import Predictor, collect_inputs, predict_inputs
    from .models.srm import MODES_WITHOUT_OFFSETS
    from .pretrained import from_pretrained
    from .runtime import resolve_device

    loaded = from_pretrained(args.checkpoint)
    inputs, unmatched = collect_inputs(args.inputs)
    if unmatched:
        raise UsageError(f"no image or video matches {unmatched[0]!r}")
    if not inputs:
        raise UsageError("no image or video found in the inputs")
    device = resolve_device(args.device)
    predictor = Predictor(loaded, device)
    if args.show_offsets and loaded.config.model.srm.mode in MODES_WITHOUT_OFFSETS:
        raise UsageError(f"--show-offsets: this model has no SRM offsets (model.srm.mode="
                         f"{loaded.config.model.srm.mode})")
    with torch.inference_mode():
        report = predict_inputs(predictor, inputs, Path(args.out), args.format, args.show_offsets, sys.stderr.isatty())
    for failure in report.failures:
        print(f"skipped: {failure}", file=sys.stderr)
    print(f"wrote {len(report.written)} files to {args.out}; {len(report.failures)} input(s) failed")
    if report.failures:
        raise RunFailed


def cmd_export(args) -> None:
    from .deploy.export import ExportRequest, export

    if args.int8 and args.fp16:  # two flags for one field of the request
        raise UsageError("--int8 and --fp16 exclude each other")
    precision = "int8" if args.int8 else "float16" if args.fp16 else "float32"
    outcome = export(ExportRequest(args.checkpoint, args.onnx, size=tuple(args.size), opset=args.opset,
                                   sampler=args.sampler, fuse=not args.no_fuse, precision=precision,
                                   calib=args.calib, calib_images=args.calib_images,
                                   min_agreement=args.min_agreement, check=args.check))
    result = outcome.result
    folded = "BatchNorm kept separate" if args.no_fuse else f"BatchNorm folded into {result.fused_pairs} convs"
    if precision == "int8":
        how = (f"INT8 QDQ ({result.details['quantized_ops']} on quantised inputs, calibrated on "
               f"{result.details['calibration_images']} images "
               f"under {args.calib}; {result.details['float_nodes']} nodes kept float32: the island of "
               f"{result.details['island']}, and the logits' resize)")
    elif precision == "float16":
        how = (f"float16 ({result.details['float_nodes']} nodes kept float32: the island of "
               f"{result.details['island']}; float32 input and output)")
    else:
        how = "float32"
    print(f"wrote {result.path} ({result.size_mb:.1f} MB, opset {args.opset}, dynamic batch/height/width, {folded}, "
          f"sampling as {args.sampler}, {how})")
    if result.agreement is not None:
        print(f"argmax agreement with the float32 graph: {result.agreement:.2%} of the pixels of "
              f"{result.agreement_inputs}")
    for r in outcome.checks:
        print(("ok   " if r.ok else "FAIL ") + r.describe())
    bad = [r for r in outcome.checks if not r.ok]
    if bad:
        print(f"scrnet export: check failed: onnxruntime differs from PyTorch at {bad[0].describe()}",
              file=sys.stderr)
        raise RunFailed


def cmd_benchmark(args) -> None:
    from .profiling.benchmark import benchmark, format_benchmark

    specs = [(m, r) for m in args.models for r in args.runtime]
    report = benchmark(specs, tuple(args.size), args.batch, args.device, args.dtype, args.channels_last, args.compile,
                       args.warmup, args.rounds, args.min_time, fuse=not args.no_fuse, precision=args.precision,
                       cuda_graph=args.cuda_graph, split_dilation=args.split_dilation)
    print(format_benchmark(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


def cmd_compare(args) -> None:
    from .experiments.compare import CompareError, compare, load_run

    runs = [load_run(p) for p in args.runs]
    result = compare(runs, args.baseline, **verdict_options(args), looks_record=args.looks)
    if args.plot and not result["comparisons"]:
        raise CompareError(f"--plot {args.plot}: one group only, nothing to compare with a baseline")
    write_compare(result, args.json, args.markdown, args.plot)


def verdict_options(args) -> dict:
    """compare()'s verdict keywords from the shared --min-seeds / --margin / --effect (points) / --unpaired / --plan /
    --allow-mixed-metrics options."""
    from .experiments.plan import read_plan

    return {"min_seeds": args.min_seeds, "margin": args.margin, "effect": args.effect, "unpaired": args.unpaired,
            "plan": read_plan(args.plan) if args.plan else None, "allow_mixed_metrics": args.allow_mixed_metrics}


def write_compare(result: dict, json_path: str | Path | None, markdown_path: str | Path | None,
                  plot_path: str | Path | None = None) -> None:
    """Write a compare result's files where asked, then print its table (last: a reader that stops early, as
    ``| head``, loses nothing written)."""
    from .experiments.compare import format_text
    from .experiments.written import write_outputs

    write_outputs(result, json_path, markdown_path, plot_path)
    print(format_text(result))


def cmd_study(args) -> None:
    from .experiments.compare import format_text
    from .experiments.study import study

    options = verdict_options(args)
    done = study(args.config, args.vary, args.variants, args.seeds, args.work_dir, args.overrides,
                 baseline=args.baseline, plot=args.plot, print_commands=args.print_commands,
                 rerun_stale=args.rerun_stale, **options)
    if done.compare is None:
        return
    if done.plot_skipped:
        print(f"no plot written to {args.plot}: one group only", file=sys.stderr)
    print(format_text(done.compare))
    print("wrote " + " and ".join(str(f) for f in done.files))


def cmd_publish(args) -> None:
    from .hub.publish import check_repo_id, publish, push

    if not args.push and (args.revision or args.private or args.dry_run):
        raise UsageError("--revision, --private and --dry-run apply to --push only")
    if args.push:
        check_repo_id(args.push, "--push")  # before anything is written
    result = publish(args.checkpoint, args.out_dir, args.eval,
                     args.name or (args.push.split("/")[-1] if args.push else None), args.license, args.force)
    print(f"wrote {result.folder}: model.safetensors (sha256 {result.sha256}), config.json, README.md; "
          f"{result.num_params / 1e6:.2f} M parameters, {result.gmacs:.1f} GMACs at {result.eval_size[0]}x"
          f"{result.eval_size[1]}")
    if args.push:
        plan = push(result.folder, args.push, args.revision, args.private, dry_run=args.dry_run)
        what = "would upload" if args.dry_run else "uploaded"
        print(f"{what} {', '.join(plan['files'])} to https://huggingface.co/{plan['repo_id']}"
              f"{'@' + plan['revision'] if plan['revision'] else ''}"
              f"{' (commit ' + plan['commit'] + ')' if 'commit' in plan else ''}")
        print(f"load it with: scrnet.Segmenter(\"hf://{plan['repo_id']}\")")


def cmd_demo(args) -> None:
    from .experiments.demo import run_demo

    run_demo(args.out, quick=args.quick, seed=args.seed)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scrnet", description="SCRNet semantic segmentation")
    from . import __version__

    parser.add_argument("--version", action="version", version=f"scrnet {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("models", help="list the model zoo: params and GMACs at 1024x2048", epilog=EPILOG_MODELS,
                       formatter_class=fmt)
    p.add_argument("--json", metavar="OUT", help="also write the table as JSON to OUT")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("flops", help="multiply-accumulates and parameters of a model, per op and per part",
                       epilog=EPILOG_FLOPS, formatter_class=fmt)
    p.add_argument("model", help="a zoo name (see `scrnet models`) or a YAML config with a 'model' section")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="model config overrides")
    p.add_argument("--size", nargs=2, type=int, default=[1024, 2048], metavar=("H", "W"),
                   help="input size (default 1024 2048)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("train", help="train a model from a config", epilog=EPILOG_TRAIN, formatter_class=fmt)
    p.add_argument("config", help="YAML config (sections model, data, train, eval)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_iters=200")
    p.add_argument("--work-dir", help="output folder (default work_dirs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in the work dir")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="score a checkpoint: per-class IoU, BIoU*, Boundary IoU, boundary F, mIoU",
                       epilog=EPILOG_EVAL, formatter_class=fmt)
    p.add_argument("checkpoint", help="a checkpoint file, a published model folder or hf://ORG/NAME[@REVISION]")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides (data.*, eval.*)")
    p.add_argument("--data.type", dest="data_type", help="data set layout (default: the checkpoint's)")
    p.add_argument("--data.root", dest="data_root", help="data set root (default: the checkpoint's)")
    p.add_argument("--split", help="split to score (default: the config's val split)")
    p.add_argument("--mode", choices=["whole", "slide"], help="inference mode (default: the config's eval.mode)")
    p.add_argument("--tta", action="store_true", help="multi-scale + flip (eval.scales, eval.flip)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--workers", type=int, metavar="N",
                   help="image-loading processes (default 4 on CUDA, 0 on the CPU)")
    p.add_argument("--json", metavar="OUT", help="write {miou, aacc, iou, num_images, mbiou, biou, boundary_iou, "
                                                 "boundary_f, distance_bands, config, ...} to OUT and each image's "
                                                 "counts to OUT with .npz (for scrnet compare)")
    p.add_argument("--report", metavar="HTML", help="also write a self-contained HTML report (needs matplotlib)")
    p.add_argument("--report-worst", type=int, default=4, metavar="K", help="worst images shown in the report")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("predict", help="segment images, folders, globs and videos", epilog=EPILOG_PREDICT,
                       formatter_class=fmt)
    p.add_argument("checkpoint", help="a checkpoint file, a published model folder or hf://ORG/NAME[@REVISION]")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, glob patterns")
    p.add_argument("--out", default="predictions", help="output folder (default predictions)")
    p.add_argument("--format", default="overlay", choices=["color", "overlay", "trainid", "labelid"])
    p.add_argument("--show-offsets", action="store_true", help="also write the finest SRM offset field as colours")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="export a checkpoint to ONNX (dynamic sizes) and check it", epilog=EPILOG_EXPORT,
                       formatter_class=fmt)
    p.add_argument("checkpoint", help="a checkpoint file, a published model folder or hf://ORG/NAME[@REVISION]")
    p.add_argument("--onnx", required=True, metavar="OUT", help="output .onnx file")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNorm separate (default: folded into convs)")
    p.add_argument("--size", nargs=2, type=int, default=[512, 1024], metavar=("H", "W"), help="export size")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset: 16, 17 (default) or 18")
    p.add_argument("--sampler", choices=["gather", "gridsample"], default="gather",
                   help="SRM's sampling as row gathers (default; faster than onnxruntime's CPU GridSample) or "
                        "as one GridSample op (for runtimes with a fast one, e.g. TensorRT)")
    p.add_argument("--check", action="store_true", help="compare onnxruntime with PyTorch at two sizes")
    p.add_argument("--int8", action="store_true", help="static INT8 (QDQ) with onnxruntime's quantisation tools")
    p.add_argument("--calib", metavar="DIR", help="images found recursively under DIR: --int8 calibrates on them; "
                                                  "with --int8 or --fp16 the converted graph's argmax agreement with "
                                                  "float32 is measured on them (--fp16 without: 4 random inputs)")
    p.add_argument("--calib-images", type=int, default=64, metavar="N", help="calibration images used (default 64)")
    p.add_argument("--fp16", action="store_true", help="float16 graph; sampling grids and attention stay float32")
    p.add_argument("--min-agreement", type=float, metavar="FRACTION",
                   help="refuse an --int8/--fp16 graph whose argmax agrees with float32 on fewer pixels "
                        "(default 0.95 for INT8, 0.99 for float16)")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("publish", help="a checkpoint as a shareable folder: safetensors, config.json, model card",
                       epilog=EPILOG_PUBLISH, formatter_class=fmt)
    p.add_argument("checkpoint", help="a checkpoint file (or a published folder, or hf://ORG/NAME)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write (must be empty or missing unless --force)")
    p.add_argument("--eval", metavar="METRICS_JSON", help="the output of `scrnet eval --json` for the model card")
    p.add_argument("--name", help="model name in the card (default: the --push repo name, or OUT_DIR's name)")
    p.add_argument("--license", default="apache-2.0", help="licence of the weights, a Hub licence id "
                                                          "(default apache-2.0)")
    p.add_argument("--force", action="store_true", help="replace a non-empty OUT_DIR")
    p.add_argument("--push", metavar="ORG/NAME", help="upload the folder to this Hugging Face Hub repository")
    p.add_argument("--revision", help="with --push: the branch to upload to (default main)")
    p.add_argument("--private", action="store_true", help="with --push: create the repository as private")
    p.add_argument("--dry-run", action="store_true", help="with --push: say what would be uploaded, upload nothing")
    p.set_defaults(func=cmd_publish)

    p = sub.add_parser("compare", help="an ablation table over runs and seeds, with calibrated intervals",
                       epilog=EPILOG_COMPARE, formatter_class=fmt)
    p.add_argument("runs", nargs="+", metavar="RUN", help="eval JSON files (scrnet eval --json) or work dirs "
                                                           "holding eval.json")
    p.add_argument("--baseline", metavar="RUN|LABEL", help="the group to compare against (default: the first)")
    p.add_argument("--json", metavar="OUT", help="write {groups, comparisons, family, baseline, warnings, ...} to OUT")
    p.add_argument("--markdown", metavar="OUT", help="write the tables as Markdown to OUT")
    p.add_argument("--plot", metavar="OUT.png", help="write a forest plot (needs matplotlib: the report extra)")
    p.add_argument("--looks", metavar="FILE", help="the study's record of looks (JSON lines): earlier undeclared looks "
                                                   "are warned about, this one is appended (scrnet study keeps "
                                                   "WORK_DIR/looks.jsonl)")
    add_verdict_options(p)
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("study", help="train and score a grid of variants x seeds, then compare them",
                       epilog=EPILOG_STUDY, formatter_class=fmt)
    p.add_argument("config", help="base training config (YAML)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides applied to every cell")
    p.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                   help="one axis of the grid (repeatable)")
    p.add_argument("--variants", nargs="+", default=[], metavar="FILE",
                   help="one axis of YAML override files, named by their stem (configs/ablations/...)")
    p.add_argument("--seeds", nargs="+", type=int, required=True, help="values of train.seed")
    p.add_argument("--work-dir", required=True, help="one sub-folder per cell: VARIANT/seedS")
    p.add_argument("--print-commands", action="store_true", help="print one shell line per cell, run nothing")
    p.add_argument("--baseline", metavar="RUN|LABEL", help="for the final compare (default: the first variant)")
    p.add_argument("--plot", metavar="OUT.png", help="also write the final compare's forest plot")
    p.add_argument("--rerun-stale", action="store_true",
                   help="a cell trained with another config is moved aside (WORK_DIR/stale-N/CELL) and trained again, "
                        "instead of refused")
    add_verdict_options(p)
    p.set_defaults(func=cmd_study)

    from .profiling.benchmark import COMPILE_MODES, PRECISIONS

    p = sub.add_parser("benchmark", help="latency of zoo models or trained models, interleaved in one run",
                       epilog=EPILOG_BENCHMARK, formatter_class=fmt)
    p.add_argument("models", nargs="+", metavar="MODEL",
                   help="zoo names, checkpoints, published model folders or hf://ORG/NAME ids")
    p.add_argument("--size", nargs=2, type=int, default=[1024, 2048], metavar=("H", "W"))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                   help="autocast dtype for the torch runtime")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", nargs="?", const="default", choices=COMPILE_MODES, metavar="MODE",
                   help="torch.compile each model as one graph with static shapes; MODE one of "
                        f"{', '.join(COMPILE_MODES)} (default: default)")
    p.add_argument("--precision", choices=PRECISIONS, default="autocast",
                   help="how --dtype applies: autocast over the float32 model, or cast the weights and input "
                        "(model.half()); SRM's grid and CRM's affinities stay float32 either way")
    p.add_argument("--cuda-graph", action="store_true",
                   help="capture each torch model's forward in a CUDA graph and time its replay (CUDA only)")
    p.add_argument("--split-dilation", action="store_true",
                   help="VAN's dilated depth-wise convs computed on input phases (the same function, faster under "
                        "--compile on a GPU: docs/gpu.md; no effect on other backbones)")
    p.add_argument("--runtime", nargs="+", choices=["torch", "onnxruntime"], default=["torch"])
    p.add_argument("--warmup", type=int, help="untimed calls first (default 10 on CUDA, 3 on the CPU)")
    p.add_argument("--rounds", type=int, help="timed calls per model, at least (default 100 on CUDA, 10 on the CPU)")
    p.add_argument("--min-time", type=float,
                   help="keep timing until this many seconds have passed (default 5 on CUDA, 0 on the CPU)")
    p.add_argument("--no-fuse", action="store_true", help="keep BatchNorm separate (default: folded into convs)")
    p.add_argument("--json", metavar="OUT")
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("demo", help="end to end with no data set: synthetic data, train SCRNet and FPN, compare",
                       epilog=EPILOG_DEMO, formatter_class=fmt)
    p.add_argument("--out", default="demo_out", help="output folder (default demo_out)")
    p.add_argument("--quick", action="store_true", help="a tiny version that runs in under a minute")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="data set tools: check a tree, generate synthetic scenes")
    data_sub = p.add_subparsers(dest="data_command", required=True, metavar="DATA_COMMAND")
    from .data.build import OPENERS

    q = data_sub.add_parser("check", help="validate a data set tree and count its pixels per class",
                            epilog=EPILOG_DATA_CHECK, formatter_class=fmt)
    q.add_argument("--data.type", dest="data_type", required=True, choices=list(OPENERS), help="layout")
    q.add_argument("--data.root", dest="data_root", required=True, help="data set root folder")
    q.add_argument("--split", default="train", help="split to check (default train)")
    q.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    q.set_defaults(func=cmd_data_check)

    q = data_sub.add_parser("synth", help="write a seeded synthetic street-scene data set (folder layout)",
                            epilog=EPILOG_DATA_SYNTH, formatter_class=fmt)
    q.add_argument("out", help="output folder")
    q.add_argument("--num-train", type=int, default=200)
    q.add_argument("--num-val", type=int, default=50)
    q.add_argument("--size", nargs=2, type=int, default=[256, 512], metavar=("H", "W"))
    q.add_argument("--seed", type=int, default=0)
    q.set_defaults(func=cmd_data_synth)
    return parser


OUT_OF_MEMORY_ADVICE = {
    "train": "keep the batch and split it into micro-batches with train.accumulate=2 (or 4), use train.amp=bf16 "
             "(or fp16), a smaller data.train.crop_size, or spread the batch over more GPUs with torchrun",
    "eval": "score with --mode slide and a smaller eval.crop_size, drop --tta, or use --device cpu",
    "benchmark": "use a smaller --size or --batch, or --dtype float16",
}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after options (argparse stops a positional list at the first option)
    if extra and hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    debug = bool(os.environ.get("SCRNET_DEBUG"))
    import cv2  # the command owns its process: image decoding in it uses one OpenCV thread (loaders parallelise)

    cv2.setNumThreads(1)
    try:
        args.func(args)
    except RunFailed as exc:
        return exc.args[0] if exc.args else 1
    except (UsageError, ScrnetError, FileNotFoundError) as exc:  # expected: one line, the code from the one table
        if debug:
            traceback.print_exc()
        code = exit_status(exc)
        print(f"scrnet {args.command}: {'error' if code == 2 else 'failed'}: {exc}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print(f"scrnet {args.command}: interrupted", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the reader of our output went away (| head): not an error of ours or the user's
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except Exception as exc:  # anything else is a bug in scrnet, not in the input: say so
        import torch

        if isinstance(exc, torch.OutOfMemoryError):  # the device, not scrnet: say what to change
            if debug:
                traceback.print_exc()
            print(f"scrnet {args.command}: failed: out of GPU memory ({str(exc).splitlines()[0][:160]}); "
                  f"{OUT_OF_MEMORY_ADVICE.get(args.command, OUT_OF_MEMORY_ADVICE['eval'])}", file=sys.stderr)
            return 1
        if debug:
            traceback.print_exc()
        print(f"scrnet {args.command}: internal error (a bug in scrnet, not a problem with your input): "
              f"{type(exc).__name__}: {exc}. Please report it with the traceback that SCRNET_DEBUG=1 prints.",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
