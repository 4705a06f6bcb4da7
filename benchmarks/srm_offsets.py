"""What a trained model's SRM (or DySample) offsets do, step by step, on a labelled split.

For each top-down step (strides 16, 8, 4 of the padded input) over the validation images:
- the offset lengths in pixels of that step's grid: mean, 95th percentile, share of pixels moved more than 0.5 px;
- the mean length near ground-truth boundaries (a label change within 1 px at that step's resolution) against
  elsewhere, and on the thin classes (given by --thin) against the others;
- where the offsets send boundary pixels (a proxy, on labels, for SRM's purpose of giving boundary pixels their own
  class's features): the share whose sampling position (pixel + offset, rounded) lies inside the pixel's own class
  away from any boundary (an unshifted sample: 0%), and the share sent onto another class.

    python benchmarks/srm_offsets.py work_dirs/study_main/neighbor/seed0/checkpoints/iter_00000300.pth
"""

import argparse
from pathlib import Path

import torch
import torch.nn.functional as F

from scrnet.data.build import open_source
from scrnet.data.dataset import SegmentationDataset
from scrnet.data.transforms import EvalTransform
from scrnet.pretrained import from_pretrained


def boundary_mask(labels: torch.Tensor) -> torch.Tensor:
    """Pixels with a different label among their 4-neighbours (``H x W`` int labels)."""
    out = torch.zeros_like(labels, dtype=torch.bool)
    out[1:] |= labels[1:] != labels[:-1]
    out[:-1] |= labels[1:] != labels[:-1]
    out[:, 1:] |= labels[:, 1:] != labels[:, :-1]
    out[:, :-1] |= labels[:, 1:] != labels[:, :-1]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--limit", type=int, default=50, help="validation images used (default 50)")
    parser.add_argument("--thin", nargs="+", default=["pole", "sign", "person"], help="thin class names")
    args = parser.parse_args()
    torch.set_num_threads(2)
    loaded = from_pretrained(args.checkpoint)
    cfg = loaded.config
    names = loaded.class_names
    thin_ids = [names.index(n) for n in args.thin if n in names]
    dataset = SegmentationDataset(open_source(cfg.data.type, cfg.data.root, cfg.data.val_split),
                                  EvalTransform(cfg.data.eval))
    steps = ("stride 16", "stride 8", "stride 4")
    acc = {s: {k: [] for k in ("len", "near", "far", "thin", "other", "own_inside", "other_class")} for s in steps}
    model = loaded.model.eval()
    with torch.no_grad():
        for i in range(min(args.limit, len(dataset))):
            sample = dataset[i]
            image = loaded.normalization(sample["image"].unsqueeze(0))
            target = sample["mask"].long()
            out = model(image, return_offsets=True)
            # the labels over the network's padded extent (padding: ignore), resampled to each step's grid below
            ph, pw = image.shape[2] + (-image.shape[2]) % 32, image.shape[3] + (-image.shape[3]) % 32
            padded = F.pad(target, (0, pw - target.shape[1], 0, ph - target.shape[0]), value=255)
            for name, off in zip(steps, out.offsets):
                if off is None:
                    continue
                h, w = off.shape[-2:]
                lab = F.interpolate(padded[None, None].float(), size=(h, w), mode="nearest")[0, 0].long()
                d = off[0].float()
                length = d.norm(dim=0)
                valid = lab != 255
                near = boundary_mask(lab) & valid
                thin = torch.zeros_like(valid)
                for t in thin_ids:
                    thin |= lab == t
                a = acc[name]
                a["len"].append(length[valid])
                a["near"].append(length[near])
                a["far"].append(length[valid & ~near])
                a["thin"].append(length[thin])
                a["other"].append(length[valid & ~thin])
                ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
                sx = (xs + d[0]).round().long().clamp(0, w - 1)
                sy = (ys + d[1]).round().long().clamp(0, h - 1)
                landed = lab[sy, sx]
                a["own_inside"].append(((landed == lab) & ~near[sy, sx])[near].float())
                a["other_class"].append(((landed != lab) & (landed != 255))[near].float())
    print(f"{Path(args.checkpoint)}: SRM mode {cfg.model.srm.mode}, {min(args.limit, len(dataset))} images of "
          f"{cfg.data.type} {cfg.data.val_split}; lengths in pixels of each step's grid")
    print(f"{'step':<10}{'mean':>7}{'p95':>7}{'>0.5px':>8}{'boundary':>10}{'elsewhere':>11}{'thin':>7}{'other':>7}"
          f"{'bnd->own inside':>17}{'bnd->other':>12}")
    for name in steps:
        a = acc[name]
        if not a["len"]:
            print(f"{name:<10} no offsets (bilinear)")
            continue
        cat = {k: torch.cat(v) if v else torch.zeros(0) for k, v in a.items()}
        mean = lambda t: float(t.mean()) if t.numel() else float("nan")  # noqa: E731
        print(f"{name:<10}{mean(cat['len']):>7.2f}{float(torch.quantile(cat['len'][:2_000_000], 0.95)):>7.2f}"
              f"{mean((cat['len'] > 0.5).float()):>8.1%}{mean(cat['near']):>10.2f}{mean(cat['far']):>11.2f}"
              f"{mean(cat['thin']):>7.2f}{mean(cat['other']):>7.2f}{mean(cat['own_inside']):>17.1%}"
              f"{mean(cat['other_class']):>12.1%}")


if __name__ == "__main__":
    main()
