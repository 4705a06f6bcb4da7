"""Tiny data set trees in the real on-disk layouts, written into temporary folders by the tests."""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=95) if path.suffix == ".jpg" else \
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def write_mask(path: Path, mask: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask).save(path)
    return path


def block_mask(h: int, w: int, values, block: int = 8, seed: int = 0) -> np.ndarray:
    """A mask of ``block x block`` tiles, each a value drawn from ``values``."""
    rng = np.random.default_rng(seed)
    tiles = rng.choice(np.asarray(values), size=((h + block - 1) // block, (w + block - 1) // block))
    return np.kron(tiles, np.ones((block, block), dtype=tiles.dtype))[:h, :w].astype(np.uint8)


def random_rgb(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def make_cityscapes(root: Path, split: str = "val", n: int = 2, size=(32, 64), label_ids=(7, 8, 26, 0, 24),
                    train_ids: bool = False) -> Path:
    for i in range(n):
        city = ["frankfurt", "lindau"][i % 2]
        stem = f"{city}_{i:06d}_000019"
        write_rgb(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png", random_rgb(*size, seed=i))
        mask = block_mask(*size, label_ids, seed=i)
        write_mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png", mask)
        if train_ids:
            from scrnet.data.cityscapes import LABEL_TO_TRAIN

            lut = np.array([LABEL_TO_TRAIN.get(v, 255) for v in range(256)], np.uint8)
            write_mask(root / "gtFine" / split / city / f"{stem}_gtFine_labelTrainIds.png", lut[mask])
    return root


def make_bdd100k(root: Path, split: str = "val", n: int = 2, size=(32, 64)) -> Path:
    for i in range(n):
        write_rgb(root / "images" / "10k" / split / f"b{i:04d}.jpg", random_rgb(*size, seed=i))
        write_mask(root / "labels" / "sem_seg" / "masks" / split / f"b{i:04d}.png",
                   block_mask(*size, [0, 5, 18, 255], seed=i))
    return root


def make_ade20k(root: Path, split: str = "validation", n: int = 2, size=(32, 48)) -> Path:
    base = root / "ADEChallengeData2016"
    for i in range(n):
        write_rgb(base / "images" / split / f"ADE_val_{i:08d}.jpg", random_rgb(*size, seed=i))
        write_mask(base / "annotations" / split / f"ADE_val_{i:08d}.png", block_mask(*size, [0, 1, 2, 150], seed=i))
    return root


def make_folder(root: Path, split: str = "train", n: int = 2, size=(32, 48), classes=("a", "b", "c")) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "classes.txt").write_text("\n".join(classes) + "\n")
    for i in range(n):
        write_rgb(root / split / "images" / f"img{i}.png", random_rgb(*size, seed=i))
        write_mask(root / split / "masks" / f"img{i}.png", block_mask(*size, [0, 1, 2, 255], seed=i))
    return root
