"""Cityscapes: ``leftImg8bit/<split>/<city>/*_leftImg8bit.png`` with ``gtFine/<split>/<city>/*_gtFine_*.png``.

Label ids map to the 19 train ids by the official table (``cityscapesscripts.helpers.labels``, written out
below so that it needs no extra package); ``*_gtFine_labelTrainIds.png`` files are used when every image of the
split has one.
"""

from pathlib import Path

from .source import IGNORE, DataSource, check_not_empty, identity_labels, label_table, pair_by_key, require_dirs

# (label id, name, train id, colour) of the official table; train id 255 is ignored in training and evaluation.
LABELS = [
    (0, "unlabeled", 255, (0, 0, 0)), (1, "ego vehicle", 255, (0, 0, 0)),
    (2, "rectification border", 255, (0, 0, 0)), (3, "out of roi", 255, (0, 0, 0)),
    (4, "static", 255, (0, 0, 0)), (5, "dynamic", 255, (111, 74, 0)), (6, "ground", 255, (81, 0, 81)),
    (7, "road", 0, (128, 64, 128)), (8, "sidewalk", 1, (244, 35, 232)), (9, "parking", 255, (250, 170, 160)),
    (10, "rail track", 255, (230, 150, 140)), (11, "building", 2, (70, 70, 70)), (12, "wall", 3, (102, 102, 156)),
    (13, "fence", 4, (190, 153, 153)), (14, "guard rail", 255, (180, 165, 180)), (15, "bridge", 255, (150, 100, 100)),
    (16, "tunnel", 255, (150, 120, 90)), (17, "pole", 5, (153, 153, 153)), (18, "polegroup", 255, (153, 153, 153)),
    (19, "traffic light", 6, (250, 170, 30)), (20, "traffic sign", 7, (220, 220, 0)),
    (21, "vegetation", 8, (107, 142, 35)), (22, "terrain", 9, (152, 251, 152)), (23, "sky", 10, (70, 130, 180)),
    (24, "person", 11, (220, 20, 60)), (25, "rider", 12, (255, 0, 0)), (26, "car", 13, (0, 0, 142)),
    (27, "truck", 14, (0, 0, 70)), (28, "bus", 15, (0, 60, 100)), (29, "caravan", 255, (0, 0, 90)),
    (30, "trailer", 255, (0, 0, 110)), (31, "train", 16, (0, 80, 100)), (32, "motorcycle", 17, (0, 0, 230)),
    (33, "bicycle", 18, (119, 11, 32)),
]
CLASSES = [name for _, name, train_id, _ in sorted(LABELS, key=lambda r: r[2]) if train_id != IGNORE]
PALETTE = [colour for _, _, train_id, colour in sorted(LABELS, key=lambda r: r[2]) if train_id != IGNORE]
LABEL_TO_TRAIN = {label_id: train_id for label_id, _, train_id, _ in LABELS}
TRAIN_TO_LABEL = {train_id: label_id for label_id, _, train_id, _ in LABELS if train_id != IGNORE}
LAYOUT = "ROOT/leftImg8bit/SPLIT/CITY/*_leftImg8bit.png and ROOT/gtFine/SPLIT/CITY/*_gtFine_labelIds.png"


def open_cityscapes(root: str | Path, split: str) -> DataSource:
    root = Path(root)
    image_dir, gt_dir = root / "leftImg8bit" / split, root / "gtFine" / split
    problems: list[str] = []
    pairs: list = []
    use_train_ids = False
    if require_dirs([root, image_dir, gt_dir], LAYOUT, problems):
        images = {p.name[: -len("_leftImg8bit.png")]: p for p in image_dir.glob("*/*_leftImg8bit.png")}
        suffix = "_gtFine_labelTrainIds.png"
        train_ids = {p.name[: -len(suffix)]: p for p in gt_dir.glob(f"*/*{suffix}")}
        use_train_ids = bool(images) and set(images) <= set(train_ids)
        masks = train_ids if use_train_ids else {
            p.name[: -len("_gtFine_labelIds.png")]: p for p in gt_dir.glob("*/*_gtFine_labelIds.png")}
        pairs = pair_by_key(images, masks, image_dir, gt_dir, problems)
        check_not_empty(pairs, f"{image_dir} ({LAYOUT})", problems)
    lut, valid = identity_labels(len(CLASSES)) if use_train_ids else label_table(LABEL_TO_TRAIN)
    return DataSource("cityscapes", root, split, pairs, list(CLASSES), list(PALETTE), lut, valid, problems)
