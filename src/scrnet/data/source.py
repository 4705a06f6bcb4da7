"""A data set on disk: its image/mask pairs, class names, palette and label rules, found and checked once.

Each layout module (cityscapes, bdd100k, ade20k, folder) builds a :class:`DataSource`; problems found while pairing
files (a missing folder, images without masks, masks without images, an empty split) are collected, never
silently dropped: :meth:`DataSource.raise_problems` turns them into one :class:`DataError`, and the data checker
lists them all.
"""

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .io import DataError

IGNORE = 255
MAX_LABEL = 65536  # masks are 8- or 16-bit


def label_table(mapping: dict[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A look-up table from raw mask values to train ids (``IGNORE`` where unmapped) and the valid raw values."""
    lut = np.full(MAX_LABEL, IGNORE, dtype=np.uint8)
    valid = np.zeros(MAX_LABEL, dtype=bool)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
        valid[raw] = True
    return lut, valid


def identity_labels(num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Masks already in train ids: ``0..num_classes-1`` and ``IGNORE``."""
    return label_table({**{i: i for i in range(num_classes)}, IGNORE: IGNORE})


def distinct_palette(n: int, seed: int = 7) -> list[tuple[int, int, int]]:
    """A fixed palette of ``n`` well-separated colours (golden-ratio hues, alternating lightness)."""
    import colorsys

    colours = []
    for i in range(n):
        h = (i * 0.618033988749895 + seed * 0.1) % 1.0
        light, sat = (0.45, 0.85) if i % 2 == 0 else (0.62, 0.65)
        colours.append(tuple(int(round(c * 255)) for c in colorsys.hls_to_rgb(h, light, sat)))
    return colours


def palette_table(palette: list[tuple[int, int, int]]) -> np.ndarray:
    """A ``256 x 3`` uint8 colour table: the palette, then black (so any uint8 label, 255 included, indexes it)."""
    return np.array(list(palette) + [(0, 0, 0)] * (256 - len(palette)), np.uint8)


@dataclass
class DataSource:
    name: str  # layout type: cityscapes | bdd100k | ade20k | folder
    root: Path
    split: str
    pairs: list[tuple[Path, Path]]
    class_names: list[str]
    palette: list[tuple[int, int, int]]
    lut: np.ndarray = field(repr=False)  # raw mask value -> train id
    valid: np.ndarray = field(repr=False)  # raw mask value -> belongs to the data set's label set
    problems: list[str] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def raise_problems(self) -> None:
        if self.problems:
            more = len(self.problems) - 1
            raise DataError(self.problems[0] + (f" (and {more} more; `scrnet data check` lists them)" if more else ""))

    def to_train_ids(self, raw: np.ndarray, mask_path: Path | str) -> np.ndarray:
        """Map a raw mask to train ids; values outside the label set raise naming the file and the values."""
        if raw.dtype == np.uint8:  # OpenCV's table look-up: faster than numpy indexing on large masks
            all_valid = cv2.minMaxLoc(cv2.LUT(raw, self.valid[:256].astype(np.uint8)))[0] == 1
        else:
            all_valid = bool(self.valid[raw].all())
        if not all_valid:
            bad = np.unique(raw[~self.valid[raw]])
            shown = ", ".join(str(v) for v in bad[:10]) + (" ..." if len(bad) > 10 else "")
            raise DataError(f"mask {mask_path} has values outside the {self.name} label set: {shown}")
        return cv2.LUT(raw, self.lut[:256]) if raw.dtype == np.uint8 else self.lut[raw]


def pair_by_key(images: dict[str, Path], masks: dict[str, Path], image_dir: Path, mask_dir: Path,
                problems: list[str]) -> list[tuple[Path, Path]]:
    """Pairs images and masks that share a key; unpaired files on either side become counted problems."""
    for missing, have, what, where in ((set(images) - set(masks), images, "images without masks", mask_dir),
                                       (set(masks) - set(images), masks, "masks without images", image_dir)):
        if missing:
            names = ", ".join(str(have[k].name) for k in sorted(missing)[:3])
            problems.append(f"{len(missing)} {what} (counterpart expected under {where}): {names}"
                            + (" ..." if len(missing) > 3 else ""))
    return [(images[k], masks[k]) for k in sorted(set(images) & set(masks))]


def require_dirs(dirs: list[Path], layout: str, problems: list[str]) -> bool:
    """True when every folder exists; otherwise one problem naming the first missing one and the layout."""
    for d in dirs:
        if not d.is_dir():
            problems.append(f"folder not found: {d}; expected layout: {layout}")
            return False
    return True


def check_not_empty(pairs: list, what: str, problems: list[str]) -> None:
    if not pairs and not problems:
        problems.append(f"empty split: no image/mask pairs found in {what}")


def pair_flat_folders(root: Path, image_dir: Path, mask_dir: Path, image_pattern: str,
                      layout: str) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Pairs ``image_dir/<image_pattern>`` with ``mask_dir/*.png`` by stem (BDD100K's and ADE20K's layouts)."""
    problems: list[str] = []
    pairs: list[tuple[Path, Path]] = []
    if require_dirs([root, image_dir, mask_dir], layout, problems):
        images = {p.stem: p for p in image_dir.glob(image_pattern)}
        masks = {p.stem: p for p in mask_dir.glob("*.png")}
        pairs = pair_by_key(images, masks, image_dir, mask_dir, problems)
        check_not_empty(pairs, f"{image_dir} ({layout})", problems)
    return pairs, problems
