"""Resampling shared by SRM and DySample: bilinear upsampling and sampling at offset pixel positions, with the
coordinate maths in float32 whatever autocast says.

Sampling goes through :class:`BilinearSampler` (``grid_sample``, bilinear, border padding, ``align_corners=False``).
Inside an ONNX export it can instead be written as four row gathers and their weighted sum
(:func:`gather_sample`, the same function), faster than onnxruntime's CPU ``GridSample`` (docs/deployment.md has
the figures). ``export_sampler("gather")`` selects it. Quantisation finds the sampling in the graph from what it
computes (``scrnet.deploy.island``), whichever form it takes.
"""

from contextlib import contextmanager
from contextvars import ContextVar

import torch
import torch.nn.functional as F
from torch import nn

from .layers import autocast_off

EXPORT_SAMPLERS = ("gather", "gridsample")
# per thread (and per asyncio task): an export in one thread never changes how another thread's export is written
_export_sampler: ContextVar[str] = ContextVar("scrnet_export_sampler", default="gridsample")


@contextmanager
def export_sampler(kind: str):
    """Within the block, ONNX exports write SRM's and DySample's sampling as ``kind``: ``gather`` (row gathers,
    faster in onnxruntime on CPU) or ``gridsample`` (the ONNX ``GridSample`` op). Eager PyTorch always uses
    ``grid_sample``."""
    if kind not in EXPORT_SAMPLERS:
        raise ValueError(f"sampler must be one of {list(EXPORT_SAMPLERS)}, got {kind!r}")
    token = _export_sampler.set(kind)
    try:
        yield
    finally:
        _export_sampler.reset(token)


def gather_sample(src: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``F.grid_sample(src, grid, "bilinear", padding_mode="border", align_corners=False)`` as gathers of the four
    neighbouring rows of the channels-last source and their bilinear weights (sizes read from the tensors, so an
    exported graph stays correct at other input sizes). Float32 ``src`` and ``grid``."""
    b, c = src.shape[0], src.shape[1]
    shape = torch._shape_as_tensor(src)
    h, w = shape[2], shape[3]
    hf, wf = h.to(grid.dtype), w.to(grid.dtype)
    # unnormalise (align_corners=False), then clamp to the border, as grid_sample's border padding does
    ix = torch.minimum(((grid[..., 0] + 1) * wf - 1) / 2, wf - 1).clamp(min=0)  # B x Ho x Wo
    iy = torch.minimum(((grid[..., 1] + 1) * hf - 1) / 2, hf - 1).clamp(min=0)
    x0f, y0f = ix.floor(), iy.floor()
    wx, wy = (ix - x0f).unsqueeze(-1), (iy - y0f).unsqueeze(-1)
    x0, y0 = x0f.long(), y0f.long()
    x1, y1 = torch.minimum(x0 + 1, w - 1), torch.minimum(y0 + 1, h - 1)
    first = (torch.arange(b, device=src.device) * (h * w)).view(-1, 1, 1)  # each image's first row
    rows = src.permute(0, 2, 3, 1).reshape(-1, c)  # B*H*W x C

    def at(yy, xx):
        return rows.index_select(0, (first + yy * w + xx).flatten()).reshape(ix.shape + (c,))

    # the four corners' weights on the small B x Ho x Wo x 1 grid, then one product and sum per corner over the
    # channels (grid_sample's own formula): 4 products and 3 sums at full size instead of 6 and 3
    out = at(y0, x0) * ((1 - wx) * (1 - wy)) + at(y0, x1) * (wx * (1 - wy))
    out = out + at(y1, x0) * ((1 - wx) * wy) + at(y1, x1) * (wx * wy)
    return out.permute(0, 3, 1, 2)


class BilinearSampler(nn.Module):
    """``grid_sample(src, grid)``, bilinear, border padding, ``align_corners=False``; in an ONNX export under
    ``export_sampler("gather")``, :func:`gather_sample`. No parameters."""

    def forward(self, src: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        # is_in_onnx_export first: Dynamo folds it to False, so torch.compile never reads the ContextVar
        if torch.onnx.is_in_onnx_export() and _export_sampler.get() == "gather":
            return gather_sample(src, grid)
        return F.grid_sample(src, grid, mode="bilinear", padding_mode="border", align_corners=False)


def upsample_bilinear(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize of ``x`` to the spatial size of ``like`` (align_corners=False, SCRNet's one convention)."""
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


def base_grid(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre x and y coordinates (0.5, 1.5, ...) of ``x``'s grid, shapes ``1 x 1 x 1 x W`` and ``1 x 1 x H x 1``.

    Built by cumulative sums over tensors derived from ``x`` (no Python ints baked in), so an exported graph stays
    correct at input sizes other than the export size. Always float32, whatever ``x``'s dtype: a cumulative sum in
    bfloat16 is off by 1.5 pixels at width 512 and 4.5 at 2048, and float16 cannot hold every integer above 2048.
    """
    ones_row = torch.ones_like(x[:1, :1, :1, :], dtype=torch.float32)
    ones_col = torch.ones_like(x[:1, :1, :, :1], dtype=torch.float32)
    return ones_row.cumsum(3) - 0.5, ones_col.cumsum(2) - 0.5


def normalized(position: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """Pixel positions (centres at 0.5, 1.5, ...) along an axis of ``size`` pixels as ``grid_sample``'s normalised
    coordinates with ``align_corners=False`` (-1 and 1 are the outer edges of the first and last pixels)."""
    return 2.0 * position / size - 1.0


def warp(u: torch.Tensor, offsets: torch.Tensor, sampler: BilinearSampler | None = None) -> torch.Tensor:
    """Sample ``u`` at each pixel centre of the offsets' grid shifted by ``offsets`` (``B x 2 x H x W``, dx then dy,
    in pixels of that grid). ``u`` may be smaller than that grid (SRM's ``sample_from="coarse"`` passes the coarse
    map): positions are normalised, so each output pixel samples ``u`` at the same physical position, and zero
    offsets give exactly bilinear upsampling (``align_corners=False``).

    The grid maths and the sampling run in float32 whatever autocast or ``u``'s dtype say (reduced-precision
    coordinates move pixels by whole pixels at Cityscapes sizes); the result is returned in ``u``'s dtype.
    ``sampler``: the module that samples (SRM passes its own, so exports can name and rewrite it).
    """
    with autocast_off(u):
        xs, ys = base_grid(offsets)
        width = xs[..., -1:] + 0.5  # 1 x 1 x 1 x 1 tensors holding W and H
        height = ys[..., -1:, :] + 0.5
        off = offsets.float()
        gx = normalized(xs + off[:, :1], width)
        gy = normalized(ys + off[:, 1:], height)
        grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)
        out = (sampler or BilinearSampler())(u.float(), grid)
    return out.to(u.dtype)
