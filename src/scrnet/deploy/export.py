"""ONNX export of the eval-mode network (auxiliary heads off) with dynamic batch, height and width, and a check
that onnxruntime reproduces PyTorch at the export size and at a second, odd size.

We use PyTorch's TorchScript-based exporter (``dynamo=False``): the dynamo exporter cannot prove that the stage
sizes of an input padded to a multiple of 32 line up (symbolic ``Mod``) and refuses dynamic sizes. The graph takes
its sizes from the input (the SRM grid, the padding and PPM's pooling are built from tensors), which the check
verifies at a size the export never saw. torch 2.13 deprecates that exporter (its warning is shown); the move to
``torch.onnx.export(dynamo=True)`` (onnxscript) waits for dynamic sizes to export there. What depends on the
exporter is kept small: the float32 island of INT8/float16 graphs is found from what the graph computes
(:mod:`scrnet.deploy.island`), and a test finds the same island in a dynamo export at a fixed size.
"""

import copy
import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError, ScrnetError
from ..models.sampling import export_sampler
from ..outputs import OutputRefused
from .onnx_passes import fold_pads_into_convs

OPSETS = (16, 17, 18)


def export_onnx(model: torch.nn.Module, path: str | Path, size: tuple[int, int] = (512, 1024), opset: int = 17,
                metadata: dict[str, str] | None = None, sampler: str = "gather") -> Path:
    """Export ``model`` (put in eval mode) to one self-contained ONNX file with input ``image`` (B x 3 x H x W,
    normalised RGB) and output ``logits`` (B x K x H x W); B, H and W are dynamic. ``sampler``: how SRM's and
    DySample's sampling is written (``scrnet.models.sampling.export_sampler``): ``gather`` (default; faster than
    onnxruntime's CPU ``GridSample``) or ``gridsample`` (one ONNX op, for runtimes with a fast one). A zero ``Pad``
    in front of a ``Conv`` is folded into the conv's padding (``onnx_passes.fold_pads_into_convs``)."""
    if opset not in OPSETS:
        raise ConfigError(f"opset must be one of {list(OPSETS)} (grid_sample needs 16 or later), got {opset}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.randn(1, 3, *size)
    with warnings.catch_warnings(), torch.no_grad(), export_sampler(sampler), eval_mode(model):
        # the tracer's notes on Python bools (our size checks) and constant folding's on strided slices are about
        # the trace, not the user's model; the exporter's own deprecation warning is let through
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding - Only steps=1")
        warnings.filterwarnings("default", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX")
        torch.onnx.export(model, (x,), str(path), dynamo=False, opset_version=opset, input_names=["image"],
                          output_names=["logits"], do_constant_folding=True,
                          dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                        "logits": {0: "batch", 2: "height", 3: "width"}})
    import onnx

    proto = onnx.load(str(path))
    fold_pads_into_convs(proto)  # stride-2 'SAME' pads (EfficientNet-Lite) into the convs' own padding: exact
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    return path


@dataclass
class CheckResult:
    size: tuple[int, int]
    max_abs_diff: float  # onnxruntime vs PyTorch float32
    argmax_agreement: float
    ok: bool
    float64_errors: tuple[float, float] | None = None  # (PyTorch float32, onnxruntime) vs PyTorch float64

    def describe(self) -> str:
        text = (f"{self.size[0]}x{self.size[1]}: max |logit difference| {self.max_abs_diff:.2e}, "
                f"argmax agreement {self.argmax_agreement:.4%}")
        if self.float64_errors:
            text += (f" (vs float64: PyTorch float32 {self.float64_errors[0]:.2e}, "
                     f"onnxruntime {self.float64_errors[1]:.2e})")
        return text


def check_onnx(model: torch.nn.Module, path: str | Path, sizes: list[tuple[int, int]], batch: int = 2,
               atol: float = 1e-4, min_agreement: float = 0.999, seed: int = 0) -> list[CheckResult]:
    """Run the ONNX file in onnxruntime and PyTorch on the same random inputs at each size.

    A size passes when argmax agrees on ``min_agreement`` of the pixels and the largest logit difference is at most
    ``atol``, or else when onnxruntime is within ``atol`` of PyTorch's float64 result, or within twice PyTorch's own
    float32 error from it. Two float32 computations can each be within ``atol`` of the exact logits and still differ
    by more (a CBAM-gated ``scrnet_effl0`` at 97x131: 1.3e-4 apart, 8.1e-5 and 9.8e-5 from float64), and in deep
    networks float32 rounding alone exceeds 1e-4. An export bug (a size baked into the graph, a wrong op) is orders
    of magnitude above every bound.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    reference64 = None
    results = []
    with eval_mode(model):
        for size in sizes:
            x = torch.randn(batch, 3, *size, generator=generator)
            with torch.no_grad():
                ref = model(x).float().numpy()
            out = session.run(["logits"], {"image": x.numpy()})[0]
            if out.shape != ref.shape:
                results.append(CheckResult(tuple(size), float("inf"), 0.0, False))
                continue
            diff = float(np.abs(out - ref).max())
            agreement = float((out.argmax(1) == ref.argmax(1)).mean())
            errors = None
            close = diff <= atol
            if not close and np.isfinite(diff):
                reference64 = reference64 or copy.deepcopy(model).double()
                with torch.no_grad():
                    exact = reference64(x.double()).numpy()
                errors = (float(np.abs(ref - exact).max()), float(np.abs(out - exact).max()))
                close = errors[1] <= max(atol, 2 * errors[0])
            results.append(CheckResult(tuple(size), diff, agreement, close and agreement >= min_agreement, errors))
    return results


@contextmanager
def eval_mode(model: torch.nn.Module):
    """``model`` in eval mode inside the block, in the mode it had (training or not) after it."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def checkpoint_metadata(class_names: list[str], normalize, palette, config=None) -> dict[str, str]:
    """What a deployment needs next to the graph: classes, palette, the input normalisation (a
    :class:`scrnet.data.Normalize`, the checkpoint's) and, with ``config``, the resolved run config, so that
    ``scrnet eval model.onnx`` scores the file exactly as the checkpoint."""
    meta = {"scrnet.class_names": json.dumps(class_names), "scrnet.palette": json.dumps([list(c) for c in palette]),
            "scrnet.normalization": json.dumps({"mean": list(normalize.mean), "std": list(normalize.std),
                                                "input": "RGB in 0..1"})}
    if config is not None:
        from ..config import config_to_dict

        meta["scrnet.config"] = json.dumps(config_to_dict(config))
    return meta


PRECISIONS = ("float32", "int8", "float16")


class ExportError(ScrnetError):
    """A converted graph that disagrees with float32 beyond the requested minimum."""


def written_by_scrnet(path: Path) -> bool:
    """Whether ``path`` is an ONNX graph ``export_onnx`` wrote (its metadata holds scrnet's class names). The file is
    parsed as data only (no external data is followed)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - any unreadable file is simply not ours
        return False
    return any(p.key == "scrnet.class_names" for p in proto.metadata_props)


@dataclass
class ExportResult:
    path: Path
    precision: str  # "float32", "int8" or "float16"
    details: dict  # what the conversion did (``quantize_int8`` / ``convert_fp16``), empty for float32
    agreement: float | None = None  # argmax agreement of a converted graph with the float32 graph
    agreement_inputs: str = ""  # what the agreement was measured on
    fused_pairs: int = 0  # Conv-BN pairs folded in the exported graph (0 with fuse=False)
    quality_gate: bool = True  # False when the agreement was measured on noise (float16 without images)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 2**20


def check_precision(precision: str, has_calib: bool) -> None:
    """A known precision, and INT8 only with calibration images."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    if precision == "int8" and not has_calib:
        raise ConfigError("--int8 needs --calib DIR: images to calibrate on, preprocessed as at evaluation")


def export_checkpoint(loaded, out: str | Path, *, size: tuple[int, int] = (512, 1024), opset: int = 17,
                      sampler: str = "gather", fuse: bool = True, precision: str = "float32",
                      calib: list[Path] | None = None, min_agreement: float | None = None) -> ExportResult:
    """Export a loaded checkpoint (``scrnet.loading.LoadedCheckpoint``) to one ONNX file at ``out``, in float32, or
    converted to ``int8`` (calibrated on the images ``calib``) or ``float16`` (see :mod:`scrnet.deploy.quantize`).

    The file carries the checkpoint's classes, palette, normalisation and config. A converted graph is checked
    against the float32 one and refused (``ExportError``) when argmax agreement is below ``min_agreement`` (default
    ``DEFAULT_MIN_AGREEMENT``): INT8 on the images of ``calib`` held out of calibration (every fourth, at least
    one: :func:`scrnet.deploy.quantize.hold_out`), float16 on all of ``calib``, or without ``calib`` on 4 noise
    inputs at ``size``, which only shows that the conversion runs (``ExportResult.quality_gate`` is False).
    Everything is written in a temporary folder beside ``out`` and moved into place only when it passes; an
    existing ``out`` is replaced only if scrnet wrote it (:func:`written_by_scrnet`)."""
    import os
    import shutil
    import tempfile

    from .island import expected_island

    check_precision(precision, bool(calib))
    out = Path(out)
    if out.is_symlink() or out.is_dir() or (out.exists() and not written_by_scrnet(out)):
        raise OutputRefused(f"{out} exists and is not an ONNX graph scrnet wrote; refusing to replace it "
                            f"(choose another --onnx path, or move it away)")
    model = loaded.model
    fused_pairs = 0
    if fuse:  # on a copy: the caller's model keeps its BatchNorm layers
        model = copy.deepcopy(model).fuse()
        fused_pairs = model.fused_pairs
    meta = checkpoint_metadata(loaded.class_names, loaded.normalization, loaded.palette, loaded.config)
    meta["scrnet.sampler"] = sampler
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        float_path = export_onnx(model, work / "float32.onnx", tuple(size), opset, meta, sampler=sampler)
        result = ExportResult(out, precision, {}, fused_pairs=fused_pairs)
        final = float_path
        if precision != "float32":
            from .quantize import (
                DEFAULT_MIN_AGREEMENT,
                argmax_agreement,
                convert_fp16,
                hold_out,
                preprocess,
                quantize_int8,
            )

            expected = expected_island(model)

            def images(paths: list[Path]) -> list[np.ndarray]:
                return [preprocess(p, loaded.config.data.eval, loaded.normalization) for p in paths]

            final = work / f"{precision}.onnx"
            if precision == "int8":  # calibrated on some images, its agreement measured on the others
                calibrate, held_out = hold_out(calib)
                result.details = quantize_int8(float_path, final, images(calibrate), expected)
                check = images(held_out)
                result.agreement_inputs = (f"{len(held_out)} held-out image{'s' if len(held_out) > 1 else ''} "
                                           f"(not used for calibration)")
            else:
                result.details = convert_fp16(float_path, final, expected)
                if calib:  # float16 calibrates nothing: every image checks the agreement
                    check = images(calib)
                    result.agreement_inputs = f"{len(check)} image{'s' if len(check) > 1 else ''}"
                else:
                    rng = np.random.default_rng(0)
                    check = [rng.standard_normal((1, 3, *size), dtype=np.float32) for _ in range(4)]
                    result.agreement_inputs = (f"4 random noise inputs at {size[0]}x{size[1]}: a check that the "
                                               f"conversion runs, not a quality gate (give --calib DIR for one)")
                    result.quality_gate = False
            result.agreement = argmax_agreement(float_path, final, check)
            minimum = DEFAULT_MIN_AGREEMENT[precision] if min_agreement is None else min_agreement
            if result.agreement < minimum:
                raise ExportError(f"{out}: the {precision} graph's argmax agrees with float32 on "
                                  f"{result.agreement:.2%} of the pixels of {result.agreement_inputs}, below the "
                                  f"minimum {minimum:.2%}; not written")
        os.replace(final, out)  # onnx.save created it with the umask's ordinary permissions
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)  # the folder this call created, with the intermediates in it



@dataclass
class ExportRequest:
    """What ``scrnet export`` asks for, field by field its options (``source``: a checkpoint, a published folder or
    ``hf://`` id; ``calib``: a folder of images, of which ``calib_images`` are used; ``check``: compare onnxruntime
    with PyTorch at ``size`` and at an odd second size). :meth:`validate` is its one validator; the error messages
    name the command's options."""

    source: str | Path
    out: str | Path
    size: tuple[int, int] = (512, 1024)
    opset: int = 17
    sampler: str = "gather"
    fuse: bool = True
    precision: str = "float32"
    calib: str | Path | None = None
    calib_images: int = 64
    min_agreement: float | None = None
    check: bool = False

    def validate(self) -> None:
        """Everything that can be checked before the model loads; :class:`ConfigError` in one line."""
        converted = self.precision in ("int8", "float16")
        if self.opset not in OPSETS:
            raise ConfigError(f"--opset must be one of {list(OPSETS)}, got {self.opset}")
        if min(self.size) < 32:
            raise ConfigError(f"--size must be at least 32 32, got {list(self.size)}")
        check_precision(self.precision, self.calib is not None)
        if self.calib is not None and not converted:
            raise ConfigError("--calib is for --int8 (calibration and the agreement check) or --fp16 (the agreement "
                              "check)")
        if self.min_agreement is not None and not converted:
            raise ConfigError("--min-agreement is for --int8 or --fp16")
        if self.min_agreement is not None and not 0 <= self.min_agreement <= 1:
            raise ConfigError(f"--min-agreement must be between 0 and 1, got {self.min_agreement}")
        if self.check and converted:
            raise ConfigError("--check compares float32 graphs with PyTorch; an --int8 or --fp16 graph is checked "
                              "against float32 as it is written; score it with `scrnet eval FILE.onnx`")


@dataclass
class ExportOutcome:
    result: ExportResult
    checks: list[CheckResult]  # with ``ExportRequest.check``: onnxruntime against PyTorch, per size; else empty


def export(request: ExportRequest) -> ExportOutcome:
    """Validate ``request``, load its model (an ONNX file is refused: export from its checkpoint), find the
    calibration images, export (:func:`export_checkpoint`) and, when asked, check the graph at two sizes."""
    from ..errors import RequestError
    from ..models import SCRNet
    from ..pretrained import from_pretrained

    request.validate()
    loaded = from_pretrained(request.source)
    if not isinstance(loaded.model, SCRNet):
        raise RequestError(f"{request.source} is already an ONNX graph; export from its checkpoint")
    calib = []
    if request.calib is not None:
        from .quantize import find_images

        calib = find_images(request.calib, request.calib_images)
    result = export_checkpoint(loaded, request.out, size=tuple(request.size), opset=request.opset,
                               sampler=request.sampler, fuse=request.fuse, precision=request.precision, calib=calib,
                               min_agreement=request.min_agreement)
    checks = []
    if request.check:
        h, w = request.size
        checks = check_onnx(loaded.model, result.path, [(h, w), (h // 2 + 17, w // 2 + 31)])
    return ExportOutcome(result, checks)
