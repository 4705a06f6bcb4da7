"""Folding every BatchNorm that directly follows a convolution into that convolution, for inference.

Which BatchNorm follows which convolution is read off one forward pass (hooks record each conv's output tensor and
each BatchNorm's input tensor; a pair is the same tensor object), so no module has to declare its pairs and the
functional convolutions inside SRM are simply left alone. The folded model is then checked against the original on
the same input: a fold that changed the function (a conv output used by something besides its BatchNorm) raises.
The check runs with TF32 off (``exact_float32``): with it on, as training and the benchmark set on CUDA, rounding
alone exceeds the tolerance.
"""

import torch
from torch import nn

from ..runtime import exact_float32


def _find_pairs(model: nn.Module, example: torch.Tensor) -> list[tuple[nn.Conv2d, nn.BatchNorm2d]]:
    conv_out: dict[int, nn.Conv2d] = {}
    pairs: list[tuple[nn.Conv2d, nn.BatchNorm2d]] = []
    seen: set[int] = set()
    keep: list[torch.Tensor] = []  # keeps the recorded outputs alive, so their ids stay unique during the pass

    def on_conv(module, inputs, output):
        conv_out[id(output)] = module
        keep.append(output)

    def on_bn(module, inputs):
        conv = conv_out.get(id(inputs[0]))
        if conv is not None and id(module) not in seen:
            seen.add(id(module))
            pairs.append((conv, module))

    handles = [m.register_forward_hook(on_conv) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_pre_hook(on_bn) for m in model.modules() if type(m) is nn.BatchNorm2d]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in handles:
            h.remove()
    return pairs


@torch.no_grad()
def fold_into_conv(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn``, applied to ``conv``'s output, into ``conv``'s weight and bias, in place."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    conv.weight.mul_(scale.reshape(-1, 1, 1, 1).to(conv.weight.dtype))
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    folded = bn.bias + (bias - bn.running_mean) * scale
    conv.bias = nn.Parameter(folded.to(conv.weight.dtype))


def fuse_conv_bn(model: nn.Module, example: torch.Tensor, rtol: float = 1e-4, extra=None) -> int:
    """Fold, in place, each BatchNorm2d fed directly by a Conv2d into it (the BatchNorm becomes ``Identity``);
    ``model`` must be in eval mode (running statistics). ``extra``: a callable doing folds the hooks cannot see
    (convolutions applied functionally), returning how many. Returns the number of pairs folded. Raises ValueError
    if the folded model's output on ``example`` differs from the original's by more than ``rtol`` of its range."""
    if model.training:
        raise ValueError("fuse: put the model in eval mode first (BatchNorm folding uses the running statistics)")
    with exact_float32():
        with torch.no_grad():
            before = model(example)
        pairs = _find_pairs(model, example)
        parents = {id(c): (parent, name) for parent in model.modules() for name, c in parent.named_children()}
        for conv, bn in pairs:
            fold_into_conv(conv, bn)
            parent, name = parents[id(bn)]
            setattr(parent, name, nn.Identity())
        folded = len(pairs) + (extra() if extra is not None else 0)
        with torch.no_grad():
            after = model(example)
    scale = before.abs().max().clamp(min=1e-6)
    err = float((after - before).abs().max() / scale)
    if err > rtol:
        raise ValueError(f"fuse: folding changed the output by {err:.2e} of its range (limit {rtol:.0e})")
    return folded
