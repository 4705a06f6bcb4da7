"""BDD100K semantic segmentation: ``images/10k/<split>/*.jpg`` with ``labels/sem_seg/masks/<split>/*.png``.

Masks are already in the 19 Cityscapes train ids, 255 ignored; classes and colours are Cityscapes'.
"""

from pathlib import Path

from .cityscapes import CLASSES, PALETTE
from .source import DataSource, identity_labels, pair_flat_folders

LAYOUT = "ROOT/images/10k/SPLIT/*.jpg and ROOT/labels/sem_seg/masks/SPLIT/*.png"


def open_bdd100k(root: str | Path, split: str) -> DataSource:
    root = Path(root)
    image_dir, mask_dir = root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split
    pairs, problems = pair_flat_folders(root, image_dir, mask_dir, "*.jpg", LAYOUT)
    lut, valid = identity_labels(len(CLASSES))
    return DataSource("bdd100k", root, split, pairs, list(CLASSES), list(PALETTE), lut, valid, problems)
