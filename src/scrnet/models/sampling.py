"""Resampling shared by SRM and DySample: bilinear upsampling and sampling at offset pixel positions, with the
coordinate maths in float32 whatever autocast says."""

import torch
import torch.nn.functional as F

from .layers import autocast_off


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


def warp(u: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Sample ``u`` at each pixel centre of the offsets' grid shifted by ``offsets`` (``B x 2 x H x W``, dx then dy,
    in pixels of that grid). ``u`` may be smaller than that grid (SRM's ``sample_from="coarse"`` passes the coarse
    map): positions are normalised, so each output pixel samples ``u`` at the same physical position, and zero
    offsets give exactly bilinear upsampling (``align_corners=False``).

    The grid maths and the sampling run in float32 whatever autocast or ``u``'s dtype say (reduced-precision
    coordinates move pixels by whole pixels at Cityscapes sizes); the result is returned in ``u``'s dtype.
    """
    with autocast_off(u):
        xs, ys = base_grid(offsets)
        width = xs[..., -1:] + 0.5  # 1 x 1 x 1 x 1 tensors holding W and H
        height = ys[..., -1:, :] + 0.5
        off = offsets.float()
        gx = 2.0 * (xs + off[:, :1]) / width - 1.0
        gy = 2.0 * (ys + off[:, 1:]) / height - 1.0
        grid = torch.cat([gx, gy], dim=1).permute(0, 2, 3, 1)
        out = F.grid_sample(u.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.to(u.dtype)
