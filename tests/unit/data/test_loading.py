"""Loading checks: every bad file gets one line naming it; odd image formats load as correct RGB."""

import numpy as np
import pytest
from data_fixtures import make_ade20k, make_bdd100k, make_folder, write_mask
from PIL import Image

from scrnet.data import DataError, SegmentationDataset, open_source, read_image, read_mask


def folder_dataset(tmp_path):
    make_folder(tmp_path)
    return SegmentationDataset(open_source("folder", tmp_path, "train"))


def test_unreadable_image_is_named(tmp_path):
    ds = folder_dataset(tmp_path)
    path = tmp_path / "train" / "images" / "img1.png"
    path.write_bytes(b"this is not a png")
    with pytest.raises(DataError, match=f"unreadable or truncated image {path}"):
        ds[1]
    assert ds[0]["image"].shape == (32, 48, 3)  # the other pairs still load


@pytest.mark.parametrize("suffix", [".png", ".jpg"])
def test_truncated_image_is_named(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    with pytest.raises(DataError, match=f"truncated image {path}"):
        read_image(path)


def test_truncated_mask_is_named(tmp_path):
    path = write_mask(tmp_path / "m.png", np.random.default_rng(0).integers(0, 3, (64, 64), dtype=np.uint8))
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match=f"unreadable or truncated mask {path}"):
        read_mask(path)


def test_colour_mask_is_refused(tmp_path):
    path = tmp_path / "m.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path)
    with pytest.raises(DataError, match=f"mask {path} has mode RGB .* expected a single-channel image of label ids"):
        read_mask(path)


def test_mask_size_mismatch_names_both_sizes(tmp_path):
    ds = folder_dataset(tmp_path)
    mask = tmp_path / "train" / "masks" / "img0.png"
    write_mask(mask, np.zeros((30, 40), np.uint8))
    with pytest.raises(DataError, match=f"mask {mask} is 40x30 but its image .*img0.png is 48x32"):
        ds[0]


@pytest.mark.parametrize("maker,data_type,split,bad,values", [
    (make_folder, "folder", "train", [0, 3, 7], "3, 7"),
    (make_bdd100k, "bdd100k", "val", [0, 19, 254], "19, 254"),
    (make_ade20k, "ade20k", "validation", [0, 151], "151"),
])
def test_labels_outside_the_label_set_name_file_and_values(tmp_path, maker, data_type, split, bad, values):
    maker(tmp_path)
    source = open_source(data_type, tmp_path, split)
    mask_path = source.pairs[0][1]
    shape = read_mask(mask_path).shape
    write_mask(mask_path, np.resize(np.array(bad, np.uint8), shape))
    with pytest.raises(DataError, match=f"mask {mask_path} has values outside the {data_type} label set: {values}$"):
        SegmentationDataset(source)[0]


def test_palette_mask_reads_indices(tmp_path):
    im = Image.fromarray(np.array([[0, 1], [2, 255]], np.uint8), mode="L").convert("P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    im.save(tmp_path / "p.png")
    assert read_mask(tmp_path / "p.png").tolist() == [[0, 1], [2, 255]]


def test_grayscale_rgba_16bit_and_exif_images_load_as_rgb(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray).save(tmp_path / "gray.png")
    assert np.array_equal(read_image(tmp_path / "gray.png"), np.stack([gray] * 3, -1))

    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    assert np.array_equal(read_image(tmp_path / "rgba.png"), rgba[..., :3])

    deep = (np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    out = read_image(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (3, 4, 3)
    assert np.abs(out[..., 0].astype(int) - deep.astype(int) // 256).max() <= 1

    upright = np.zeros((20, 40, 3), np.uint8)
    upright[:, :10] = 255  # white band on the left of the upright picture
    stored = np.ascontiguousarray(np.rot90(upright, k=1))  # stored turned 90 degrees counter-clockwise
    im = Image.fromarray(stored)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "exif.jpg", exif=exif, quality=100)
    out = read_image(tmp_path / "exif.jpg")
    assert out.shape == (20, 40, 3)
    assert out[:, :8].mean() > 240 and out[:, 12:].mean() < 15
    from PIL import ImageOps

    assert np.array_equal(out, np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "exif.jpg")).convert("RGB")))
