"""Exact rewrites of an exported ONNX graph.

:func:`fold_pads_into_convs` moves a zero ``Pad`` in front of a ``Conv`` into the conv's own ``pads`` attribute,
which ONNX allows to be asymmetric (PyTorch's ``Conv2d`` does not, so TensorFlow-style 'SAME' padding at stride 2
exports as ``Pad`` then ``Conv``). onnxruntime fuses the pair itself when it runs a float graph, but its quantisation
tools quantise the graph as written: in an INT8 graph the ``Pad`` ran in float between a dequantise and a quantise
node, at full resolution (EfficientNet-Lite0's stride-2 pads; docs/deployment.md has the cost). Folding also gives
every other runtime one node fewer per pair.
"""

import numpy as np


def _constant_value(name: str, model, nodes: list, position: dict, initializers: dict):
    """The value of tensor ``name`` if it is computed from constants alone (initialisers, ``Constant`` nodes and
    ops over them), else None. Evaluated with onnx's reference runtime on the slice of the graph that computes it.
    ``nodes`` is ``model.graph.node`` as a list, ``position`` maps each node output to its index there."""
    import onnx
    from onnx.reference import ReferenceEvaluator

    if name in initializers:
        return onnx.numpy_helper.to_array(initializers[name])
    needed, stack, seen, used_inits = set(), [name], set(), set()
    while stack:
        tensor = stack.pop()
        if not tensor or tensor in seen:
            continue
        seen.add(tensor)
        if tensor in initializers:
            used_inits.add(tensor)
            continue
        if tensor not in position:  # a graph input: not constant
            return None
        needed.add(position[tensor])
        stack.extend(nodes[position[tensor]].input)
    order = [nodes[i] for i in sorted(needed)]  # graph order is a topological order
    sub = onnx.helper.make_graph(order, "constant", [], [onnx.helper.make_tensor_value_info(name, 0, None)],
                                 [initializers[i] for i in used_inits])
    return ReferenceEvaluator(onnx.helper.make_model(sub, opset_imports=model.opset_import)).run(None, {})[0]


def fold_pads_into_convs(model) -> int:
    """Fold every ``Pad`` (constant mode, zero value, constant non-negative pads on the spatial axes only) whose
    consumers are all ``Conv`` nodes into those convs' ``pads``, in place on ``model`` (an ``onnx.ModelProto``).
    The result is the same function: a conv's ``pads`` are zeros too. Returns the number of ``Pad`` nodes removed;
    constants left without a consumer are removed with them."""
    import onnx

    graph = model.graph
    initializers = {init.name: init for init in graph.initializer}
    nodes = list(graph.node)  # indexed once: rewiring conv inputs below leaves the pads' constant slices as they are
    position = {out: i for i, node in enumerate(nodes) for out in node.output}

    def constant(tensor: str):
        return _constant_value(tensor, model, nodes, position, initializers)

    consumers: dict[str, list] = {}
    for node in nodes:
        for tensor in node.input:
            consumers.setdefault(tensor, []).append(node)
    outputs = {o.name for o in graph.output}
    removed = []
    for pad in [n for n in nodes if n.op_type == "Pad"]:
        mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
        users = consumers.get(pad.output[0], [])
        if mode != "constant" or not users or pad.output[0] in outputs or any(u.op_type != "Conv" for u in users):
            continue
        if len(pad.input) > 2 and pad.input[2]:  # the pad value: only zero folds into a conv
            value = constant(pad.input[2])
            if value is None or np.any(value != 0):
                continue
        if len(pad.input) > 3 and pad.input[3]:  # opset 18's axes input: not written by our exports
            continue
        pads = constant(pad.input[1])
        if pads is None or pads.size % 2 or np.any(pads < 0):
            continue
        pads = [int(p) for p in pads.ravel()]
        rank = len(pads) // 2
        begin, end = pads[:rank], pads[rank:]
        if rank < 3 or any(begin[:2]) or any(end[:2]):  # batch and channel axes must stay unpadded
            continue
        spatial = begin[2:] + end[2:]
        if any(a.name == "auto_pad" and a.s not in (b"", b"NOTSET") for u in users for a in u.attribute):
            continue
        for conv in users:
            attr = next((a for a in conv.attribute if a.name == "pads"), None)
            if attr is None:
                conv.attribute.append(onnx.helper.make_attribute("pads", spatial))
            else:
                merged = [int(a) + b for a, b in zip(attr.ints, spatial)]
                del attr.ints[:]
                attr.ints.extend(merged)
            conv.input[0] = pad.input[0]
        removed.append(pad)
    for pad in removed:
        graph.node.remove(pad)
    _remove_dead_constants(graph)
    return len(removed)


def _remove_dead_constants(graph) -> None:
    """Remove nodes of the constant arithmetic's op types whose outputs nothing reads (what computed the folded
    pads; a node nothing reads computes nothing the graph returns, so removing one is always exact)."""
    while True:
        used = {t for n in graph.node for t in n.input} | {o.name for o in graph.output}
        dead = [n for n in graph.node if not any(o in used for o in n.output) and n.op_type in _CONSTANT_OPS]
        if not dead:
            return
        for node in dead:
            graph.node.remove(node)


# ops of the constant arithmetic the TorchScript exporter writes for F.pad's pads
_CONSTANT_OPS = frozenset({"Constant", "ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast"})
