"""Reduced-precision ONNX graphs for deployment: static INT8 (QDQ, calibrated on real images) and float16, each
verified before it is written.

Both start from the float32 graph ``export_onnx`` writes and keep its *float island* (``island.float_island``:
sampling positions, sampling, attention energies, found from what the graph computes) in float32. A conversion is
refused when:

- the island misses what the PyTorch network computes (``island.check_island``: as many sampling sites as the
  network calls its sampler, as many attention products as its attention modules compute);
- after conversion, an island node reads a float16 or quantised value that another island node produced
  (:func:`verify_island`), or an island node is gone;
- argmax agreement with the float32 graph, on the calibration images (or, for float16 without them, on random
  inputs), falls below the requested minimum (:func:`argmax_agreement`).

INT8 uses onnxruntime's quantisation tools (``quantize_static``, QDQ format, per-channel signed 8-bit weights,
unsigned 8-bit activations, MinMax calibration), calibrated on images preprocessed exactly as at evaluation (the
checkpoint's ``data.eval`` resizing and its normalisation). Every op type the tools quantise is quantised outside
the island and the logits' tail. float16 uses ``onnxconverter_common.float16`` (the public converter).
"""

import logging
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from ..errors import ConfigError, RequestError
from .island import Island, IslandError, check_island, float_island

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# label folders of the supported layouts (folder, BDD100K, ADE20K, Cityscapes): their PNGs are masks, not images
LABEL_DIRS = ("masks", "labels", "annotations", "gtFine", "gtCoarse")
# the least argmax agreement with the float32 graph a converted graph must reach (``--min-agreement``)
DEFAULT_MIN_AGREEMENT = {"int8": 0.95, "float16": 0.99}


def output_tail(model) -> list[str]:
    """Names of the nodes between the last convolution and each graph output (the logits' resize to the input size
    and the crop), found by following each node's data input back from the outputs until a ``Conv``. INT8 keeps them
    in float32: the logits are then returned unrounded instead of as 8-bit levels (near-ties between classes would
    otherwise flip), and the full-resolution resize skips a quantise-dequantise pair."""
    producers = {out: node for node in model.graph.node for out in node.output}
    tail = []
    for output in model.graph.output:
        node = producers.get(output.name)
        while node is not None and node.op_type != "Conv" and node.name not in tail:
            tail.append(node.name)
            node = producers.get(node.input[0])
    return tail


def read_shapes_before_dequantize(model) -> int:
    """Make every ``Shape`` node that reads a ``DequantizeLinear`` output read the quantised tensor instead (the same
    shape), in place; dequantise nodes left without a consumer are removed. Returns the number of rewired reads.

    The quantisation tools put a dequantise in front of every consumer of a quantised tensor, ``Shape`` included,
    and onnxruntime gives each consumer its own copy: the graph's size arithmetic (input padding, SRM's grid,
    PyTorch's resize targets) dequantised whole feature maps, and the input image twice, only to read their shapes.
    """
    producers = {out: node for node in model.graph.node for out in node.output}
    count = 0
    for node in model.graph.node:
        if node.op_type == "Shape":
            source = producers.get(node.input[0])
            if source is not None and source.op_type == "DequantizeLinear":
                node.input[0] = source.input[0]
                count += 1
    used = {t for n in model.graph.node for t in n.input} | {o.name for o in model.graph.output}
    for node in [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.output[0] not in used]:
        model.graph.node.remove(node)
    return count


def find_images(root: str | Path, limit: int) -> list[Path]:
    """Up to ``limit`` images found recursively under ``root``, spread evenly over the sorted list; files under a
    label folder of a supported layout (``LABEL_DIRS``) are skipped, so a split's root can be given."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"--calib {root}: not a folder")
    found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
                   and not set(p.relative_to(root).parts[:-1]) & set(LABEL_DIRS))
    if not found:
        raise RequestError(f"--calib {root}: no image ({', '.join(IMAGE_SUFFIXES)}) found under it")
    if limit <= 0:
        raise ConfigError(f"--calib-images must be positive, got {limit}")
    if len(found) <= limit:
        return found
    picks = np.linspace(0, len(found) - 1, limit).round().astype(int)
    return [found[i] for i in picks]


def hold_out(images: list[Path]) -> tuple[list[Path], list[Path]]:
    """``(calibrate, held_out)``: every fourth image (at least one) is kept out of INT8 calibration, so that the
    agreement with float32 is measured on images the quantiser never saw. Needs two images or more."""
    if len(images) < 2:
        raise ConfigError(f"INT8 needs at least 2 images under --calib ({len(images)} found): some to calibrate on and "
                          f"at least one held out for the agreement check")
    held = set(range(3, len(images), 4)) or {len(images) - 1}
    return ([p for i, p in enumerate(images) if i not in held], [p for i, p in enumerate(images) if i in held])


def preprocess(path: Path, eval_cfg, normalize) -> np.ndarray:
    """One image as the eval loop feeds it to the network: ``data.eval`` resize, then the stored normalisation."""
    import torch

    from ..data.io import read_image
    from ..data.transforms import EvalTransform

    rgb = read_image(path)
    image, _ = EvalTransform(eval_cfg)(rgb, np.zeros(rgb.shape[:2], np.uint8))
    return normalize(image.unsqueeze(0)).to(torch.float32).numpy()


def _copy_metadata(src, dst, extra: dict[str, str]) -> None:
    """``src``'s metadata (the class names, palette, normalisation and run config export wrote) and ``extra`` onto
    the ``dst`` model proto."""
    have = {p.key for p in dst.metadata_props}
    for p in src.metadata_props:
        if p.key not in have:
            dst.metadata_props.add(key=p.key, value=p.value)
    for key, value in extra.items():
        dst.metadata_props.add(key=key, value=value)


def quantize_int8(fp32_path: str | Path, out_path: str | Path, inputs: list[np.ndarray],
                  expected: tuple[int, int]) -> dict:
    """Static QDQ INT8 of the float32 graph at ``fp32_path``, calibrated on ``inputs`` (preprocessed images, see
    :func:`preprocess`), written to ``out_path``; ``expected``: the island the network needs
    (``island.expected_island``). Raises ``IslandError`` when the island misses it or the converted graph rounds
    inside it; returns what was done."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.arrays = iter(inputs)

        def get_next(self):
            array = next(self.arrays, None)
            return None if array is None else {"image": array}

    src = onnx.load(str(fp32_path))
    island = float_island(src)
    check_island(island, *expected, where=str(out_path))
    excluded = sorted(island.nodes) + [name for name in output_tail(src) if name not in island.nodes]
    out_path = Path(out_path)
    with onnxruntime_python_logs_hidden():  # the tools' advice to pre-process the graph: not the user's concern
        quantize_static(str(fp32_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax)
    quantized = onnx.load(str(out_path))
    read_shapes_before_dequantize(quantized)
    verify_island(quantized, island, str(out_path))
    ops = sorted(_quantized_types(quantized) - {"QuantizeLinear", "DequantizeLinear"})
    _copy_metadata(src, quantized, {"scrnet.precision": "int8",
                                    "scrnet.quantization": "QDQ static, per-channel s8 weights, u8 activations, "
                                                           f"MinMax on {len(inputs)} images"})
    onnx.save(quantized, str(out_path))
    return {"precision": "int8", "calibration_images": len(inputs), "float_nodes": len(excluded),
            "island": island.describe(), "quantized_ops": ",".join(ops)}


@contextmanager
def onnxruntime_python_logs_hidden():
    """Inside the block, records that onnxruntime's Python tools log (to the root logger directly, or to loggers
    under ``onnxruntime``) are dropped; every other record passes as before. After it, the root logger's filters
    and handlers and the ``onnxruntime`` logger's level are as they were: a root handler that
    ``logging.warning`` added to a process that had none (``basicConfig``) is removed again. onnxruntime's own C++
    log severity is never changed (it cannot be read back, so it could not be restored)."""
    import onnxruntime

    package = Path(onnxruntime.__file__).resolve().parent

    def keep(record: logging.LogRecord) -> bool:
        try:
            inside = Path(record.pathname).resolve().is_relative_to(package)
        except (OSError, ValueError):
            inside = False
        return not (inside or record.name.startswith("onnxruntime"))

    root, named = logging.getLogger(), logging.getLogger("onnxruntime")
    handlers, level = list(root.handlers), named.level
    root.addFilter(keep)
    named.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        root.removeFilter(keep)
        named.setLevel(level)
        if not handlers:
            for handler in [h for h in root.handlers if h not in handlers]:
                root.removeHandler(handler)


def verify_island(converted, island: Island, where: str) -> None:
    """Refuse a converted graph (INT8 or float16) in which an island node is missing, or reads a value that another
    island node produced after it was cast to float16 or quantised on the way (a round trip that rounds
    coordinates or energies); raises ``IslandError`` naming the first such node."""
    from onnx import TensorProto

    names = {node.name for node in converted.graph.node}
    missing = sorted(island.nodes - names)
    if missing:
        raise IslandError(f"{where}: {len(missing)} float32 island nodes are gone after conversion "
                          f"(first: {missing[0]})")
    producers = {out: node for node in converted.graph.node for out in node.output}
    lossy = {"QuantizeLinear", "DequantizeLinear"}

    def rounds(node) -> bool:
        return node.op_type in lossy or _cast_target(node) == TensorProto.FLOAT16

    for node in converted.graph.node:
        if node.name not in island.nodes:
            continue
        for tensor in node.input:
            up, rounded = producers.get(tensor), False
            while up is not None and (up.op_type == "Cast" or up.op_type in lossy):
                rounded = rounded or rounds(up)
                up = producers.get(up.input[0])
            if rounded and up is not None and up.name in island.nodes:
                raise IslandError(f"{where}: island node {node.name} ({node.op_type}) reads a rounded value of "
                                  f"island node {up.name} ({up.op_type}); conversion broke the float32 island")


def argmax_agreement(reference: str | Path, converted: str | Path, inputs: list[np.ndarray]) -> float:
    """Fraction of pixels, over ``inputs``, where the ``converted`` graph's argmax equals the ``reference``
    graph's (both run in onnxruntime on the CPU)."""
    import onnxruntime as ort

    ref = ort.InferenceSession(str(reference), providers=["CPUExecutionProvider"])
    out = ort.InferenceSession(str(converted), providers=["CPUExecutionProvider"])
    agree = total = 0
    for array in inputs:
        a = ref.run(["logits"], {"image": array})[0].argmax(1)
        b = out.run(["logits"], {"image": array})[0].argmax(1)
        agree += int((a == b).sum())
        total += a.size
    return agree / max(total, 1)


def _cast_target(node) -> int | None:
    """The element type a ``Cast`` node casts to (an ``onnx.TensorProto`` enum value); None for any other node."""
    if node.op_type != "Cast":
        return None
    return next((a.i for a in node.attribute if a.name == "to"), None)


def drop_fp16_round_trips(model, float_nodes: set[str]) -> int:
    """Rewire every ``Cast(to float16) -> Cast(to float32)`` pair whose source a float32 node produced, so the
    float32 value passes unrounded; returns how many. The float16 converter casts every edge of a blocked node, even
    between two blocked nodes: CRM's position-attention energy (~7.8e4 on a synthetic street scene) became inf on
    its way from the matrix product to the softmax, and sampling coordinates lost their exactness."""
    from onnx import TensorProto

    producers = {out: node for node in model.graph.node for out in node.output}
    count = 0
    for second in model.graph.node:
        if _cast_target(second) != TensorProto.FLOAT:
            continue
        first = producers.get(second.input[0])
        if first is None or _cast_target(first) != TensorProto.FLOAT16:
            continue
        source = producers.get(first.input[0])
        if source is None or source.name not in float_nodes:
            continue
        second.input[0] = first.input[0]
        count += 1
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    dead = [n for n in model.graph.node
            if _cast_target(n) == TensorProto.FLOAT16 and not any(o in used for o in n.output)]
    for node in dead:
        model.graph.node.remove(node)
    return count


def retarget_float_casts(model) -> int:
    """Make every ``Cast(to float32)`` whose output the converter declared float16 cast to float16, in place;
    returns how many. ``onnxconverter_common`` converts the tensors around a Cast outside the blocked nodes but
    leaves its target type, a graph onnxruntime refuses to load (a ``.float()`` in front of DANet's affinity,
    a no-op in the float32 graph, is a no-op again in float16)."""
    from onnx import TensorProto

    declared = {v.name: v.type.tensor_type.elem_type for v in model.graph.value_info}
    count = 0
    for node in model.graph.node:
        if node.op_type != "Cast" or declared.get(node.output[0]) != TensorProto.FLOAT16:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.FLOAT16
                count += 1
    return count


def _quantized_types(model) -> set[str]:
    """Op types of the nodes of ``model`` that read a DequantizeLinear output (run on quantised inputs)."""
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in model.graph.node if any(i in dq for i in n.input)}


def convert_fp16(fp32_path: str | Path, out_path: str | Path, expected: tuple[int, int]) -> dict:
    """The float32 graph at ``fp32_path`` in float16, the float island kept float32, inputs and outputs float32,
    written to ``out_path``; ``expected`` as for :func:`quantize_int8`."""
    import onnx
    from onnxconverter_common.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    src = onnx.load(str(fp32_path))
    island = float_island(src)
    check_island(island, *expected, where=str(out_path))
    blocked_ops = sorted(set(DEFAULT_OP_BLOCK_LIST) | {"GridSample"})
    half = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True, node_block_list=sorted(island.nodes),
                                    op_block_list=blocked_ops)
    float_nodes = island.nodes | {n.name for n in src.graph.node if n.op_type in blocked_ops}
    retarget_float_casts(half)
    drop_fp16_round_trips(half, float_nodes)
    verify_island(half, island, str(out_path))
    _copy_metadata(src, half, {"scrnet.precision": "float16"})
    onnx.save(half, str(out_path))
    return {"precision": "float16", "float_nodes": len(island), "island": island.describe()}
