"""Helpers shared by the benchmark scripts."""

from pathlib import Path

import cv2
import numpy as np

from scrnet.data.cityscapes import TRAIN_TO_LABEL
from scrnet.data.synthetic import render_scene

# synthetic classes (road, sidewalk, building, vegetation, sky, pole, sign, person, car) as Cityscapes label ids
SYNTHETIC_TO_LABEL_ID = np.array([TRAIN_TO_LABEL[t] for t in (0, 1, 2, 8, 10, 5, 7, 11, 13)], np.uint8)


def write_cityscapes_tree(root: Path, n: int, split: str = "train", size=(1024, 2048)) -> Path:
    """``n`` synthetic street scenes as a Cityscapes tree (PNG images, labelIds masks), city ``synth``."""
    for i in range(n):
        image, mask = render_scene(size[0], size[1], np.random.default_rng(i))
        stem = f"synth_{i:06d}_000019"
        for sub, name, data in (("leftImg8bit", f"{stem}_leftImg8bit.png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR)),
                                ("gtFine", f"{stem}_gtFine_labelIds.png", SYNTHETIC_TO_LABEL_ID[mask])):
            folder = root / sub / split / "synth"
            folder.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(folder / name), data)
    return root
