"""ADE20K (SceneParsing, 150 classes): ``ADEChallengeData2016/images/{training,validation}/*.jpg`` with
``ADEChallengeData2016/annotations/{training,validation}/*.png``.

Label 0 ("other") becomes 255 and is ignored; classes 1..150 become train ids 0..149. ``root`` may be the folder
holding ``ADEChallengeData2016`` or that folder itself; splits ``train``/``val`` are accepted for
``training``/``validation``.
"""

from pathlib import Path

from .source import IGNORE, DataSource, distinct_palette, label_table, pair_flat_folders

CLASSES = [
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag",
]
SPLITS = {"train": "training", "val": "validation"}
LAYOUT = "ROOT/ADEChallengeData2016/images/{training,validation}/*.jpg and .../annotations/{training,validation}/*.png"


def open_ade20k(root: str | Path, split: str) -> DataSource:
    root = Path(root)
    base = root / "ADEChallengeData2016" if (root / "ADEChallengeData2016").is_dir() else root
    split = SPLITS.get(split, split)
    image_dir, mask_dir = base / "images" / split, base / "annotations" / split
    pairs, problems = pair_flat_folders(root, image_dir, mask_dir, "*.jpg", LAYOUT)
    lut, valid = label_table({0: IGNORE, **{k: k - 1 for k in range(1, len(CLASSES) + 1)}})
    return DataSource("ade20k", root, split, pairs, list(CLASSES), distinct_palette(len(CLASSES)), lut, valid,
                      problems)
