"""Per-image counts of an evaluation, stored beside its JSON (``eval.json`` -> ``eval.npz``), so intervals over
images and seeds (``scrnet compare``) never need the model again.

Format 2 (``format`` in the file) holds, for N images and K classes: ``images`` (N names, relative to the data
root), ``tp`` / ``gt`` / ``pred`` (N x K: true positives, ground-truth pixels and predicted pixels per class, what
IoU needs), ``biou_inter`` / ``biou_union`` (N x K, our fixed-band BIoU*) and, when the published boundary metrics
ran, ``boundary_inter`` / ``boundary_union`` (N x K, Boundary IoU of Cheng et al.). Integers, compressed. Format 1
stored an N x K x K ``confusion`` instead (K/3 times more numbers: ~0.7 GB per ADE20K run in memory); it still
reads, reduced to the per-class counts on loading.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.io import DataError

FORMAT = 2


def class_counts(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, ground-truth and predicted pixels per class of confusion matrices ``... x K x K`` (rows:
    ground truth)."""
    confusion = np.asarray(confusion)
    return (np.diagonal(confusion, axis1=-2, axis2=-1).copy(), confusion.sum(-1), confusion.sum(-2))


@dataclass
class PerImageCounts:
    images: list[str]
    tp: np.ndarray  # N x K, int64
    gt: np.ndarray  # N x K
    pred: np.ndarray  # N x K
    biou_inter: np.ndarray  # N x K
    biou_union: np.ndarray  # N x K
    boundary_inter: np.ndarray | None = None  # N x K, Boundary IoU (None: not computed)
    boundary_union: np.ndarray | None = None

    def __post_init__(self):
        n = len(self.images)
        arrays = [self.tp, self.gt, self.pred, self.biou_inter, self.biou_union]
        if (self.boundary_inter is None) != (self.boundary_union is None):
            raise ValueError("per-image Boundary IoU counts need both intersections and unions")
        if self.boundary_inter is not None:
            arrays += [self.boundary_inter, self.boundary_union]
        if any(a.ndim != 2 or a.shape[0] != n or a.shape[1] != self.tp.shape[1] for a in arrays):
            raise ValueError(f"per-image counts disagree: {n} names, arrays of shapes {[a.shape for a in arrays]} "
                             f"(each must be images x classes)")

    @property
    def num_classes(self) -> int:
        return self.tp.shape[1]

    @classmethod
    def from_confusion(cls, images: list[str], confusion: np.ndarray, biou_inter: np.ndarray,
                       biou_union: np.ndarray, boundary_inter=None, boundary_union=None) -> "PerImageCounts":
        """From per-image confusion matrices ``N x K x K`` (e.g. simulated ones)."""
        return cls(list(images), *class_counts(np.asarray(confusion, np.int64)), np.asarray(biou_inter, np.int64),
                   np.asarray(biou_union, np.int64), boundary_inter, boundary_union)

    @classmethod
    def from_result(cls, per_image, images: list[str]) -> "PerImageCounts":
        """From ``EvalResult.per_image`` (``ImageCounts`` per image) and the images' names, same order."""
        if len(per_image) != len(images):
            raise ValueError(f"{len(per_image)} per-image counts for {len(images)} images")

        def stacked(values) -> np.ndarray:
            return np.stack([np.asarray(v, dtype=np.int64) for v in values]) if per_image else np.zeros((0, 0),
                                                                                                         np.int64)

        boundary = None
        if per_image and all(p.boundary is not None for p in per_image):
            boundary = np.stack([np.asarray(p.boundary, np.int64) for p in per_image])
        return cls(list(images), stacked([p.tp for p in per_image]), stacked([p.gt for p in per_image]),
                   stacked([p.pred for p in per_image]), stacked([p.inter for p in per_image]),
                   stacked([p.union for p in per_image]),
                   None if boundary is None else boundary[:, 0], None if boundary is None else boundary[:, 1])

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        extra = ({} if self.boundary_inter is None else
                 {"boundary_inter": self.boundary_inter, "boundary_union": self.boundary_union})
        np.savez_compressed(path, format=np.array(FORMAT), images=np.array(self.images, dtype=str), tp=self.tp,
                            gt=self.gt, pred=self.pred, biou_inter=self.biou_inter, biou_union=self.biou_union,
                            **extra)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "PerImageCounts":
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                version = int(z["format"]) if "format" in z.files else 1
                if version > FORMAT:
                    raise DataError(f"{path}: per-image counts of format {version}, newer than this scrnet reads "
                                    f"({FORMAT}): upgrade scrnet")
                boundary = ([z["boundary_inter"].astype(np.int64), z["boundary_union"].astype(np.int64)]
                            if "boundary_inter" in z.files else [None, None])
                if version == 1:
                    classes = class_counts(z["confusion"].astype(np.int64))
                else:
                    classes = tuple(z[name].astype(np.int64) for name in ("tp", "gt", "pred"))
                return cls([str(s) for s in z["images"]], *classes, z["biou_inter"].astype(np.int64),
                           z["biou_union"].astype(np.int64), *boundary)
        except FileNotFoundError:
            raise
        except (OSError, KeyError, ValueError) as exc:
            raise DataError(f"{path}: not a file of per-image counts written by scrnet eval ({exc})") from None


def counts_path(json_path: str | Path) -> Path:
    """Where the per-image counts of the eval JSON at ``json_path`` live: the same name with ``.npz``."""
    return Path(json_path).with_suffix(".npz")
