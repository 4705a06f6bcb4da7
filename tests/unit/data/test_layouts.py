import numpy as np
import pytest
from data_fixtures import block_mask, make_ade20k, make_bdd100k, make_cityscapes, make_folder, write_mask, write_rgb

from scrnet.data import DataError, SegmentationDataset, open_source
from scrnet.data.cityscapes import CLASSES, LABEL_TO_TRAIN, PALETTE, TRAIN_TO_LABEL

# hand-written expectation of the official table, used whatever is installed
HAND = {0: 255, 1: 255, 6: 255, 7: 0, 8: 1, 9: 255, 11: 2, 17: 5, 18: 255, 19: 6, 20: 7, 23: 10, 24: 11, 26: 13,
        29: 255, 30: 255, 31: 16, 33: 18}


def test_cityscapes_table_matches_the_hand_expectation():
    assert {k: LABEL_TO_TRAIN[k] for k in HAND} == HAND
    assert len(CLASSES) == 19 and CLASSES[0] == "road" and CLASSES[18] == "bicycle"
    assert PALETTE[13] == (0, 0, 142) and TRAIN_TO_LABEL[13] == 26


def test_cityscapes_table_matches_cityscapesscripts():
    np.in1d = getattr(np, "in1d", np.isin)  # cityscapesscripts still calls np.in1d, gone in numpy 2.4
    labels = pytest.importorskip("cityscapesscripts.helpers.labels")  # in the eval extra
    official = {lab.id: (255 if lab.trainId in (-1, 255) else lab.trainId) for lab in labels.labels if lab.id >= 0}
    assert LABEL_TO_TRAIN == official
    official_classes = {lab.trainId: (lab.name, lab.color) for lab in labels.labels if 0 <= lab.trainId < 255}
    assert [(n, tuple(c)) for n, c in (official_classes[i] for i in range(19))] == list(zip(CLASSES, PALETTE))


def test_cityscapes_label_ids_map_to_train_ids(tmp_path):
    make_cityscapes(tmp_path, "val", n=3, label_ids=(7, 26, 0, 33))
    ds = SegmentationDataset(open_source("cityscapes", tmp_path, "val"))
    assert len(ds) == 3 and ds.class_names[13] == "car"
    raw = block_mask(32, 64, (7, 26, 0, 33), seed=0)
    _, mask = ds.load(0)
    lut = np.array([LABEL_TO_TRAIN.get(v, 255) for v in range(256)])
    assert np.array_equal(mask, lut[raw]) and set(np.unique(mask)) <= {0, 13, 18, 255}


def test_cityscapes_prefers_label_train_ids_when_every_image_has_them(tmp_path):
    make_cityscapes(tmp_path, "val", n=2, train_ids=True)
    source = open_source("cityscapes", tmp_path, "val")
    assert all(m.name.endswith("_gtFine_labelTrainIds.png") for _, m in source.pairs)
    with_ids = SegmentationDataset(source).load(1)[1]
    (tmp_path / "gtFine" / "val" / "lindau" / "lindau_000001_000019_gtFine_labelTrainIds.png").unlink()
    source = open_source("cityscapes", tmp_path, "val")
    assert all(m.name.endswith("_gtFine_labelIds.png") for _, m in source.pairs)
    assert np.array_equal(SegmentationDataset(source).load(1)[1], with_ids)


def test_bdd100k_masks_are_train_ids(tmp_path):
    make_bdd100k(tmp_path, "val")
    ds = SegmentationDataset(open_source("bdd100k", tmp_path, "val"))
    _, mask = ds.load(0)
    assert np.array_equal(mask, block_mask(32, 64, [0, 5, 18, 255], seed=0))
    assert ds.class_names == CLASSES


def test_ade20k_reduces_zero(tmp_path):
    make_ade20k(tmp_path, "validation")
    for split in ("validation", "val"):
        ds = SegmentationDataset(open_source("ade20k", tmp_path, split))
        raw = block_mask(32, 48, [0, 1, 2, 150], seed=0)
        _, mask = ds.load(0)
        expected = np.where(raw == 0, 255, raw.astype(np.int64) - 1)
        assert np.array_equal(mask, expected)
    assert len(ds.class_names) == 150 and ds.class_names[0] == "wall" and ds.class_names[149] == "flag"
    assert len(set(ds.palette)) == 150


def test_folder_classes_and_palette(tmp_path):
    make_folder(tmp_path, classes=("road 10 20 30", "tree", "traffic light 1 2 3"))
    source = open_source("folder", tmp_path, "train")
    assert source.class_names == ["road", "tree", "traffic light"]
    assert source.palette[0] == (10, 20, 30) and source.palette[2] == (1, 2, 3)
    assert len(SegmentationDataset(source)) == 2


@pytest.mark.parametrize("maker,data_type,split,expected", [
    (make_cityscapes, "cityscapes", "train", "leftImg8bit/train"),
    (make_bdd100k, "bdd100k", "train", "images/10k/train"),
    (make_ade20k, "ade20k", "training", "images/training"),
    (make_folder, "folder", "val", "val/images"),
])
def test_missing_split_names_the_expected_path_and_layout(tmp_path, maker, data_type, split, expected):
    maker(tmp_path)
    with pytest.raises(DataError, match=f"folder not found: .*{expected}.*expected layout: ROOT/"):
        SegmentationDataset(open_source(data_type, tmp_path, split))


def test_missing_root(tmp_path):
    with pytest.raises(DataError, match=f"folder not found: {tmp_path / 'nowhere'}; expected layout"):
        SegmentationDataset(open_source("cityscapes", tmp_path / "nowhere", "val"))


def test_unpaired_files_are_counted_and_named(tmp_path):
    make_folder(tmp_path, n=2)
    for i in range(5):
        write_rgb(tmp_path / "train" / "images" / f"extra{i}.png", np.zeros((8, 8, 3), np.uint8))
    write_mask(tmp_path / "train" / "masks" / "orphan.png", np.zeros((8, 8), np.uint8))
    source = open_source("folder", tmp_path, "train")
    assert source.problems[0].startswith("5 images without masks") and "extra0.png, extra1.png, extra2.png ..." in \
        source.problems[0]
    assert source.problems[1].startswith("1 masks without images") and "orphan.png" in source.problems[1]
    assert len(source.pairs) == 2  # what is paired is kept, and the problems are not dropped:
    with pytest.raises(DataError, match=r"5 images without masks .* \(and 1 more; `scrnet data check` lists them\)"):
        SegmentationDataset(source)


def test_empty_split(tmp_path):
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    (tmp_path / "gtFine" / "val").mkdir(parents=True)
    with pytest.raises(DataError, match="empty split: no image/mask pairs found in .*leftImg8bit/val"):
        SegmentationDataset(open_source("cityscapes", tmp_path, "val"))


def test_folder_without_classes_file(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "classes.txt").unlink()
    with pytest.raises(DataError, match="file not found: .*classes.txt; expected layout"):
        SegmentationDataset(open_source("folder", tmp_path, "train"))


def test_folder_images_sharing_a_stem(tmp_path):
    make_folder(tmp_path)
    write_rgb(tmp_path / "train" / "images" / "img0.jpg", np.zeros((32, 48, 3), np.uint8))
    with pytest.raises(DataError, match="1 images in .* share a stem .*: img0"):
        SegmentationDataset(open_source("folder", tmp_path, "train"))


def test_unknown_type():
    with pytest.raises(DataError, match="unknown data set type 'kitti'; expected one of"):
        open_source("kitti", "/tmp", "val")
