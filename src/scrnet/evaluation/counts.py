"""Per-image counts of an evaluation, stored beside its JSON (``eval.json`` -> ``eval.npz``), so intervals over
images and seeds (``scrnet compare``) never need the model again.

The file holds, for N images and K classes: ``images`` (N names, relative to the data root), ``confusion``
(N x K x K, rows = ground truth, columns = prediction), ``biou_inter`` / ``biou_union`` (N x K, our fixed-band
BIoU*) and, when the published boundary metrics ran, ``boundary_inter`` / ``boundary_union`` (N x K, Boundary IoU of
Cheng et al.; absent in files written before they were kept). Integers, compressed: a 500-image Cityscapes val split
is about 0.3 MB.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.io import DataError


@dataclass
class PerImageCounts:
    images: list[str]
    confusion: np.ndarray  # N x K x K, int64
    biou_inter: np.ndarray  # N x K
    biou_union: np.ndarray  # N x K
    boundary_inter: np.ndarray | None = None  # N x K, Boundary IoU (None: not computed)
    boundary_union: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.images)
        shapes = [self.confusion.shape[0], self.biou_inter.shape[0], self.biou_union.shape[0]]
        if (self.boundary_inter is None) != (self.boundary_union is None):
            raise ValueError("per-image Boundary IoU counts need both intersections and unions")
        if self.boundary_inter is not None:
            shapes += [self.boundary_inter.shape[0], self.boundary_union.shape[0]]
        if any(s != n for s in shapes):
            raise ValueError(f"per-image counts disagree on the number of images: {n} names, confusion "
                             f"{self.confusion.shape}, boundary {self.biou_inter.shape} / {self.biou_union.shape}")

    @classmethod
    def from_result(cls, per_image, images: list[str]) -> "PerImageCounts":
        """From ``EvalResult.per_image`` (``ImageCounts`` per image) and the images' names, same order."""
        if len(per_image) != len(images):
            raise ValueError(f"{len(per_image)} per-image counts for {len(images)} images")

        def stacked(values, empty_shape: tuple) -> np.ndarray:
            if not per_image:
                return np.zeros(empty_shape, np.int64)
            return np.stack([np.asarray(v, dtype=np.int64) for v in values])

        boundary = None
        if per_image and all(p.boundary is not None for p in per_image):
            boundary = stacked([p.boundary for p in per_image], ())
        return cls(list(images), stacked([p.cm for p in per_image], (0, 0, 0)),
                   stacked([p.inter for p in per_image], (0, 0)), stacked([p.union for p in per_image], (0, 0)),
                   None if boundary is None else boundary[:, 0], None if boundary is None else boundary[:, 1])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        extra = ({} if self.boundary_inter is None else
                 {"boundary_inter": self.boundary_inter, "boundary_union": self.boundary_union})
        np.savez_compressed(path, images=np.array(self.images, dtype=str), confusion=self.confusion,
                            biou_inter=self.biou_inter, biou_union=self.biou_union, **extra)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PerImageCounts":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                boundary = ([z["boundary_inter"].astype(np.int64), z["boundary_union"].astype(np.int64)]
                            if "boundary_inter" in z.files else [None, None])
                return cls([str(s) for s in z["images"]], z["confusion"].astype(np.int64),
                           z["biou_inter"].astype(np.int64), z["biou_union"].astype(np.int64), *boundary)
        except FileNotFoundError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: not a file of per-image counts written by scrnet eval ({exc})") from None


def counts_path(json_path: str | Path) -> Path:
    """Where the per-image counts of the eval JSON at ``json_path`` live: the same name with ``.npz``."""
    return Path(json_path).with_suffix(".npz")
