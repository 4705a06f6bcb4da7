"""BDD100K semantic segmentation: ``images/10k/<split>/*.jpg`` with ``labels/sem_seg/masks/<split>/*.png``.

Masks are already in the 19 Cityscapes train ids, 255 ignored; classes and colours are Cityscapes'.
"""

from pathlib import Path

from .cityscapes import CLASSES, PALETTE
from .source import DataSource, check_not_empty, identity_labels, pair_by_key, require_dirs

LAYOUT = "ROOT/images/10k/SPLIT/*.jpg and ROOT/labels/sem_seg/masks/SPLIT/*.png"


def open_bdd100k(root: str | Path, split: str) -> DataSource:
    root = Path(root)
    image_dir, mask_dir = root / "images" / "10k" / split, root / "labels" / "sem_seg" / "masks" / split
    problems: list[str] = []
    pairs: list = []
    if require_dirs([root, image_dir, mask_dir], LAYOUT, problems):
        images = {p.stem: p for p in image_dir.glob("*.jpg")}
        masks = {p.stem: p for p in mask_dir.glob("*.png")}
        pairs = pair_by_key(images, masks, image_dir, mask_dir, problems)
        check_not_empty(pairs, f"{image_dir} ({LAYOUT})", problems)
    lut, valid = identity_labels(len(CLASSES))
    return DataSource("bdd100k", root, split, pairs, list(CLASSES), list(PALETTE), lut, valid, problems)
