"""The float32 island of an exported graph: what reduced-precision conversion (INT8, float16) must leave in float32,
found from what the graph computes, not from node names (so it does not depend on one exporter's naming).

Two computations are sensitive:

- **Sampling positions.** SRM and DySample sample a feature map at computed pixel positions, as one ``GridSample``
  or, in the gather form, as ``Gather`` nodes whose indices are computed from the network's values (every other
  gather of the graph picks sizes out of a ``Shape`` or reads a constant index). Positions are pixel coordinates:
  float16 cannot hold them exactly above 2048 and an 8-bit coordinate moves samples by whole pixels.
- **Attention energies.** A matrix product of two computed tensors (DANet's C x C and N x N affinities, and the
  product of the attention map with the values) and every ``Softmax``: the energies exceed float16's range at
  Cityscapes sizes.

The island is:

1. the *sampling sites*: every ``GridSample`` and every data-dependent gather (computed data, computed indices);
2. the *coordinate slice*: every node on the way back from a site's positions (GridSample's grid, a gather's
   indices) to the convolutions that predict offsets, not following a ``Shape`` into the network (a shape does not
   depend on the values) and stopping at each ``Conv`` (the offset convs are ordinary convs and are converted);
3. the *sampled result*: every node computed from island values and constants alone (the bilinear weights, their
   products with the gathered rows and the sum), which ends where the sampled map meets anything else;
4. the *attention*: every ``Softmax`` and every matrix product of two computed tensors, and every node on a path
   from one of those to another (the shift before a softmax, the reshapes between).

A tensor is *static* when it is computed from initialisers, constants and shapes alone.
"""

from dataclasses import dataclass, field

from ..errors import ScrnetError


class IslandError(ScrnetError):
    """A deployment graph whose float32 island is not what the network needs: conversion would round or quantise
    sampling positions or attention energies."""


GATHERS = ("Gather", "GatherElements", "GatherND")
MATMULS = ("MatMul", "Gemm")


@dataclass
class Island:
    nodes: set[str] = field(default_factory=set)
    sampling_sites: int = 0  # GridSample nodes plus distinct sampled maps read by data-dependent gathers
    attention_products: int = 0  # matrix products of two computed tensors
    softmaxes: int = 0

    def __len__(self) -> int:
        return len(self.nodes)

    def describe(self) -> str:
        return (f"{self.sampling_sites} sampling sites, {self.attention_products} attention products, "
                f"{self.softmaxes} softmaxes")


def static_tensors(model) -> set[str]:
    """Names of the tensors of ``model`` computed from initialisers, constants and shapes alone."""
    static = {init.name for init in model.graph.initializer} | {""}
    for node in model.graph.node:  # graph order is a topological order
        if node.op_type in ("Constant", "Shape", "Size") or all(t in static for t in node.input):
            static.update(node.output)
    return static


class _Graph:
    """A graph's nodes with their producers, consumers and static tensors, and the two walks the island needs."""

    def __init__(self, model):
        self.nodes = list(model.graph.node)
        self.producers = {out: node for node in self.nodes for out in node.output}
        self.static = static_tensors(model)
        self.consumers: dict[str, list] = {}
        for node in self.nodes:
            for tensor in node.input:
                self.consumers.setdefault(tensor, []).append(node)

    def computed(self, tensor: str) -> bool:
        return tensor not in self.static

    def add_upstream(self, tensors, into: set[str]) -> None:
        """Add to ``into`` every node on the way back from ``tensors``, stopping at each ``Conv``, not entering a node
        already in ``into`` again, and not following a ``Shape`` into the network (the shape node itself is
        added)."""
        stack = list(tensors)
        while stack:
            node = self.producers.get(stack.pop())
            if node is None or node.name in into or node.op_type == "Conv":
                continue
            into.add(node.name)
            if node.op_type != "Shape":
                stack.extend(node.input)

    def downstream(self, starts) -> set[str]:
        """Every node downstream of the nodes ``starts``, not through a ``Conv``."""
        below: set[str] = set()
        stack = list(starts)
        while stack:
            for out in stack.pop().output:
                for user in self.consumers.get(out, []):
                    if user.name not in below and user.op_type != "Conv":
                        below.add(user.name)
                        stack.append(user)
        return below


def float_island(model) -> Island:
    """The float32 island of ``model`` (an ``onnx.ModelProto``); see the module docstring."""
    graph, island = _Graph(model), Island()
    _add_sampling(graph, island)
    _add_sampled_results(graph, island)
    _add_attention(graph, island)
    return island


def _add_sampling(graph: _Graph, island: Island) -> None:
    """Steps 1-2: the sampling sites and the slice back from their positions to the offset convs."""
    sampled_maps = set()
    for node in graph.nodes:
        if node.op_type == "GridSample":
            island.nodes.add(node.name)
            island.sampling_sites += 1
            graph.add_upstream([node.input[1]], island.nodes)
        elif node.op_type in GATHERS and graph.computed(node.input[0]) and graph.computed(node.input[1]):
            island.nodes.add(node.name)
            sampled_maps.add(node.input[0])
            graph.add_upstream([node.input[1]], island.nodes)
    island.sampling_sites += len(sampled_maps)


def _add_sampled_results(graph: _Graph, island: Island) -> None:
    """Step 3: the nodes computed from island values and static tensors alone (in graph order, a topological
    order, so a chain of them is followed to its end)."""
    if not island.nodes:
        return
    for node in graph.nodes:
        if node.name in island.nodes or node.op_type == "Conv":
            continue
        computed = [t for t in node.input if graph.computed(t)]
        if computed and all(t in graph.producers and graph.producers[t].name in island.nodes for t in computed):
            island.nodes.add(node.name)


def _add_attention(graph: _Graph, island: Island) -> None:
    """Step 4: the seeds (softmaxes, products of two computed tensors) and every node both downstream of one seed
    and upstream of another."""
    seeds = []
    for node in graph.nodes:
        if node.op_type == "Softmax":
            seeds.append(node)
            island.softmaxes += 1
        elif node.op_type in MATMULS and sum(graph.computed(t) for t in node.input[:2]) == 2:
            seeds.append(node)
            island.attention_products += 1
    if not seeds:
        return
    above: set[str] = set()
    graph.add_upstream([t for seed in seeds for t in seed.input], above)
    island.nodes |= {seed.name for seed in seeds} | (graph.downstream(seeds) & above)


def check_island(island: Island, samplers: int, attention_products: int, where: str) -> None:
    """Refuse an island that misses what the network computes: ``samplers`` sampling modules (SRM, DySample) and
    ``attention_products`` matrix products of two computed tensors (DANet attention) the model holds."""
    missing = []
    if island.sampling_sites < samplers:
        missing.append(f"{samplers} sampling sites expected, {island.sampling_sites} found")
    if island.attention_products < attention_products:
        missing.append(f"{attention_products} attention products expected, {island.attention_products} found")
    if missing:
        raise IslandError(f"{where}: the float32 island misses what the network computes ({'; '.join(missing)}); "
                          f"converting would round sampling positions or attention energies. This is a bug in "
                          f"scrnet's graph analysis for this exporter: export float32 instead")


def expected_island(model, size: tuple[int, int] = (64, 64)) -> tuple[int, int]:
    """(sampling calls, attention products) of one forward pass of the PyTorch ``model`` at ``size``: what its
    graph's island must hold. Counted with forward hooks on the sampler and attention modules (a module that
    exists but is not called, as the sampler of ``srm.mode=bilinear``, counts nothing)."""
    import torch

    from ..models.crm import ChannelAttention, PositionAttention
    from ..models.sampling import BilinearSampler

    counts = {"samplers": 0, "products": 0}

    def hook(module, args, output):
        if isinstance(module, BilinearSampler):
            counts["samplers"] += 1
        else:
            counts["products"] += 2  # the affinity, then the affinity applied to the values

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (BilinearSampler, ChannelAttention, PositionAttention))]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, *size))
    finally:
        for handle in handles:
            handle.remove()
    return counts["samplers"], counts["products"]
