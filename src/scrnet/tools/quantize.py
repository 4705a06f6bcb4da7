"""Reduced-precision ONNX graphs for deployment: static INT8 (QDQ, calibrated on real images) and float16.

Both start from the float32 graph ``export_onnx`` writes and keep a *float island* in float32: every node that
computes SRM's (or DySample's) sampling positions, the ``GridSample`` that uses them, and CRM's attention maps
(matrix products and softmax). Sampling positions are pixel coordinates: in float16 they are not exact above 2048,
and an 8-bit coordinate would move samples by whole pixels; CRM's channel affinity exceeds float16's range at
Cityscapes sizes. The island is found in the graph: every node of the samplers (scope ``/sampler/``: the
``GridSample``, or the gathers and weights of ``export --sampler gather``) and the backward slice of their inputs,
stopping at convolutions (the offset convs themselves are ordinary convs and are converted), plus the attention
nodes under ``/decoder/context/attention``.

INT8 uses onnxruntime's quantisation tools (``quantize_static``, QDQ format, per-channel signed 8-bit weights,
unsigned 8-bit activations, MinMax calibration), calibrated on images preprocessed exactly as at evaluation (the
checkpoint's ``data.eval`` resizing and its normalisation). Every op type the tools quantise (convolutions, matrix
products, additions, activations, resizing, concatenation, pooling, ...) is quantised outside the island: on
``scrnet_effl0`` at 512x1024 that ran 1.66x faster than float32 against 1.53x with only convolutions and matrix
products quantised (2 threads, one run, while the machine was busy).
"""

from pathlib import Path

import numpy as np

from ..data.io import DataError
from ..errors import ConfigError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# label folders of the supported layouts (folder, BDD100K, ADE20K, Cityscapes): their PNGs are masks, not images
LABEL_DIRS = ("masks", "labels", "annotations", "gtFine", "gtCoarse")
ATTENTION_SCOPE = "/decoder/context/attention/"
SAMPLER_SCOPE = "/sampler/"  # SRM's and DySample's BilinearSampler (gathers, or one GridSample)


def float_island(model) -> list[str]:
    """Names of the nodes of ``model`` (an ``onnx.ModelProto``) that must stay float32 (see the module docstring)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    keep: set[str] = set()

    def walk(tensor: str) -> None:
        stack = [tensor]
        while stack:
            node = producers.get(stack.pop())
            if node is None or node.name in keep or node.op_type == "Conv":
                continue
            keep.add(node.name)
            if node.op_type != "Shape":  # a shape does not depend on the values: do not follow it into the network
                stack.extend(node.input)

    for node in model.graph.node:
        if node.op_type == "GridSample":
            keep.add(node.name)
            walk(node.input[1])
        elif SAMPLER_SCOPE in node.name:  # the gather form: coordinates, indices, weights and the weighted sum
            keep.add(node.name)
            for tensor in node.input:
                if tensor in producers and SAMPLER_SCOPE not in producers[tensor].name:
                    walk(tensor)  # back from the sampler's inputs to the convs: the grid maths (and the sampled map)
        elif node.name.startswith(ATTENTION_SCOPE) and node.op_type != "Conv":
            keep.add(node.name)
    return sorted(keep)


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
        raise DataError(f"--calib {root}: no image ({', '.join(IMAGE_SUFFIXES)}) found under it")
    if limit <= 0:
        raise ConfigError(f"--calib-images must be positive, got {limit}")
    if len(found) <= limit:
        return found
    picks = np.linspace(0, len(found) - 1, limit).round().astype(int)
    return [found[i] for i in picks]


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


def quantize_int8(fp32_path: str | Path, out_path: str | Path, images: list[Path], eval_cfg, normalize) -> dict:
    """Static QDQ INT8 of the float32 graph at ``fp32_path``, calibrated on ``images``; returns what was done."""
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
            self.paths = iter(images)

        def get_next(self):
            path = next(self.paths, None)
            return None if path is None else {"image": preprocess(path, eval_cfg, normalize)}

    import logging

    import onnxruntime as ort

    src = onnx.load(str(fp32_path))
    island = float_island(src)
    excluded = island + [name for name in output_tail(src) if name not in island]
    out_path = Path(out_path)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the tools' advice to pre-process, and onnxruntime's unused-initialiser notices
    ort.set_default_logger_severity(3)
    try:
        quantize_static(str(fp32_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
                        calibrate_method=CalibrationMethod.MinMax)
    finally:
        root.setLevel(level)
        ort.set_default_logger_severity(2)
    quantized = onnx.load(str(out_path))
    read_shapes_before_dequantize(quantized)
    ops = sorted(_quantized_types(quantized) - {"QuantizeLinear", "DequantizeLinear"})
    _copy_metadata(src, quantized, {"scrnet.precision": "int8",
                                    "scrnet.quantization": "QDQ static, per-channel s8 weights, u8 activations, "
                                                           f"MinMax on {len(images)} images"})
    onnx.save(quantized, str(out_path))
    return {"precision": "int8", "calibration_images": len(images), "float_nodes": len(excluded),
            "quantized_ops": ",".join(ops)}


def drop_fp16_round_trips(model, float_nodes: set[str]) -> int:
    """Rewire every ``Cast(to float16) -> Cast(to float32)`` pair whose source a float32 node produced, so the
    float32 value passes unrounded; returns how many. onnxruntime's converter casts every edge of a blocked node, even
    between two blocked nodes: CRM's position-attention energy (~7.8e4 on a synthetic street scene) became inf on
    its way from the matrix product to the softmax, and sampling coordinates lost their exactness."""
    from onnx import TensorProto

    producers = {out: node for node in model.graph.node for out in node.output}

    def cast_to(node) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    count = 0
    for second in model.graph.node:
        if cast_to(second) != TensorProto.FLOAT:
            continue
        first = producers.get(second.input[0])
        if first is None or cast_to(first) != TensorProto.FLOAT16:
            continue
        source = producers.get(first.input[0])
        if source is None or source.name not in float_nodes:
            continue
        second.input[0] = first.input[0]
        count += 1
    used = {name for node in model.graph.node for name in node.input} | {o.name for o in model.graph.output}
    dead = [n for n in model.graph.node if cast_to(n) == TensorProto.FLOAT16 and not any(o in used for o in n.output)]
    for node in dead:
        model.graph.node.remove(node)
    return count


def _quantized_types(model) -> set[str]:
    """Op types of the nodes of ``model`` that read a DequantizeLinear output (run on quantised inputs)."""
    dq = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.op_type for n in model.graph.node if any(i in dq for i in n.input)}


def convert_fp16(fp32_path: str | Path, out_path: str | Path) -> dict:
    """The float32 graph at ``fp32_path`` in float16, the float island kept float32, inputs and outputs float32."""
    import onnx
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    src = onnx.load(str(fp32_path))
    island = float_island(src)
    blocked_ops = list(DEFAULT_OP_BLOCK_LIST) + ["GridSample"]
    half = convert_float_to_float16(onnx.load(str(fp32_path)), keep_io_types=True, node_block_list=island,
                                    op_block_list=blocked_ops)
    float_nodes = set(island) | {n.name for n in src.graph.node if n.op_type in blocked_ops}
    drop_fp16_round_trips(half, float_nodes)
    _copy_metadata(src, half, {"scrnet.precision": "float16"})
    onnx.save(half, str(out_path))
    return {"precision": "float16", "float_nodes": len(island)}
