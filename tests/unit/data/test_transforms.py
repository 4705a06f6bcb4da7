import cv2
import numpy as np
import pytest
import torch
from data_fixtures import block_mask, make_folder

from scrnet.data import (
    EvalTransform,
    EvalTransformConfig,
    SegmentationDataset,
    TrainTransform,
    TrainTransformConfig,
    open_source,
)
from scrnet.data.transforms import fit_size, photometric_distortion, random_crop_box, resize_crop

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def unnormalize(image: torch.Tensor) -> np.ndarray:
    """The transforms hand out uint8 ``3 x H x W``: back to ``H x W x 3`` integers."""
    assert image.dtype == torch.uint8
    return image.numpy().transpose(1, 2, 0).astype(np.int64)


def encoded_pair(h=96, w=160, block=12):
    """An image whose colour encodes its own label: channel 0 = 20 * label, constant over 12x12 tiles."""
    mask = block_mask(h, w, [0, 1, 2, 3, 4], block=block, seed=1)
    image = np.stack([mask * 20, np.full_like(mask, 100), 255 - mask * 20], -1).astype(np.uint8)
    return image, mask


@pytest.mark.parametrize("seed", range(12))
def test_image_and_mask_stay_aligned_through_every_random_transform(seed):
    image, mask = encoded_pair()
    cfg = TrainTransformConfig(scale=[160, 96], ratio_range=[0.5, 2.0], crop_size=[64, 80], cat_max_ratio=0.75,
                               flip_prob=0.5, photometric=False)
    img_t, mask_t = TrainTransform(cfg)(image, mask, np.random.default_rng(seed))
    assert img_t.shape == (3, 64, 80) and img_t.dtype == torch.uint8  # uint8 crosses the workers' shared memory
    assert mask_t.shape == (64, 80) and mask_t.dtype == torch.uint8
    decoded = unnormalize(img_t)
    m = mask_t.numpy()
    # compare where the 5x5 neighbourhood has one label (bilinear blends colours only across tile edges)
    lo = cv2.erode(m.astype(np.uint8), np.ones((5, 5), np.uint8))
    hi = cv2.dilate(m.astype(np.uint8), np.ones((5, 5), np.uint8))
    interior = (lo == hi) & (m != 255)
    assert interior.sum() > 500
    assert np.abs(decoded[..., 0][interior] - 20 * m[interior]).max() <= 2
    padded = m == 255  # the source mask has no 255: these pixels are padding
    assert (img_t.numpy().transpose(1, 2, 0)[padded] == 0).all()  # the image is padded with 0


def test_padding_is_zero_for_the_image_and_255_for_the_mask():
    image, mask = encoded_pair(40, 50)
    cfg = TrainTransformConfig(scale=[50, 40], ratio_range=[1.0, 1.0], crop_size=[64, 80], cat_max_ratio=1.0,
                               flip_prob=0.0, photometric=False)
    img_t, mask_t = TrainTransform(cfg)(image, mask, np.random.default_rng(0))
    assert torch.all(mask_t[40:] == 255) and torch.all(mask_t[:, 50:] == 255)
    assert torch.equal(mask_t[:40, :50], torch.from_numpy(mask))
    assert torch.all(img_t[:, 40:] == 0)


def test_flip_moves_image_and_mask_together():
    image, mask = encoded_pair(40, 50)
    cfg = TrainTransformConfig(scale=[50, 40], ratio_range=[1.0, 1.0], crop_size=[40, 50], cat_max_ratio=1.0,
                               flip_prob=1.0, photometric=False)
    img_t, mask_t = TrainTransform(cfg)(image, mask, np.random.default_rng(0))
    assert np.array_equal(mask_t.numpy(), mask[:, ::-1])
    assert np.array_equal(unnormalize(img_t), image[:, ::-1].astype(np.int64))


def test_masks_never_leave_the_label_set():
    mask = block_mask(97, 131, [0, 3, 7, 255], block=3, seed=0)
    image = np.zeros((97, 131, 3), np.uint8)
    cfg = TrainTransformConfig(scale=[131, 97], crop_size=[50, 70])
    for seed in range(20):
        _, m = TrainTransform(cfg)(image, mask, np.random.default_rng(seed))
        assert set(m.unique().tolist()) <= {0, 3, 7, 255}


def test_cat_max_ratio_takes_the_first_crop_that_satisfies_it():
    mask = np.zeros((100, 100), np.uint8)
    mask[:, 50:] = 1  # crops of 20x20 mix both classes only near the middle column
    shares = {0.75: [], 1.0: []}
    for ratio in shares:
        for seed in range(200):
            rng = np.random.default_rng(seed)
            y, x = random_crop_box(mask, 20, 20, ratio, rng)
            crop = mask[y:y + 20, x:x + 20]
            shares[ratio].append(np.bincount(crop.ravel(), minlength=2).max() / crop.size)
            replay = np.random.default_rng(seed)  # the draws are (y, x) pairs: find the first acceptable one
            for _ in range(10):
                yy, xx = int(replay.integers(0, 81)), int(replay.integers(0, 81))
                c = mask[yy:yy + 20, xx:xx + 20]
                if ratio >= 1.0 or np.bincount(c.ravel(), minlength=2).max() / c.size < ratio:
                    break
            assert (y, x) == (yy, xx)
    accepted = np.mean(np.array(shares[0.75]) < 0.75)
    assert accepted > 0.6 and np.mean(np.array(shares[1.0]) < 0.75) < 0.2


def test_cat_max_ratio_ignores_the_ignore_label():
    mask = np.full((40, 40), 255, np.uint8)
    mask[:, :20] = 0
    mask[:, 20:22] = 1
    y, x = random_crop_box(mask, 40, 40, 0.75, np.random.default_rng(0))
    assert (y, x) == (0, 0)  # one crop only; class 0 is 20 of 22 labelled columns, so all 10 draws fail alike


def test_photometric_distortion_is_seeded_and_changes_colours():
    image = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    a = photometric_distortion(image.copy(), np.random.default_rng(5))
    b = photometric_distortion(image.copy(), np.random.default_rng(5))
    assert np.array_equal(a, b) and a.dtype == np.uint8 and a.shape == image.shape
    changed = [not np.array_equal(photometric_distortion(image.copy(), np.random.default_rng(s)), image)
               for s in range(20)]
    assert sum(changed) >= 15


def test_resize_crop_matches_resize_then_crop():
    image = np.random.default_rng(0).integers(0, 256, (100, 200, 3), dtype=np.uint8)
    for nh, nw in [(150, 300), (50, 100), (237, 411)]:
        full = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
        crop = resize_crop(image, (nh, nw), (10, 20, 40, 60))
        assert np.abs(crop.astype(int) - full[10:50, 20:80]).max() <= 1


def test_fit_size_keeps_the_aspect_ratio():
    assert fit_size(1024, 2048, 2048, 1024) == (1024, 2048)
    assert fit_size(1024, 2048, 1024, 512) == (512, 1024)
    assert fit_size(720, 1280, 2048, 1024) == (1024, 1820)  # short side bound: 1024 / 720
    assert fit_size(512, 683, 2048, 512) == (512, 683)


def test_eval_keeps_the_ground_truth_at_original_resolution():
    image, mask = encoded_pair(96, 160)
    img_t, mask_t = EvalTransform(EvalTransformConfig(scale=[80, 48]))(image, mask)
    assert img_t.shape == (3, 48, 80) and mask_t.shape == (96, 160)
    img_t, _ = EvalTransform(EvalTransformConfig())(image, mask)
    assert np.array_equal(unnormalize(img_t), image.astype(np.int64))


def test_dataset_samples_are_deterministic_per_seed_and_epoch(tmp_path):
    make_folder(tmp_path, size=(64, 96))
    cfg = TrainTransformConfig(scale=[96, 64], crop_size=[32, 32])
    ds = SegmentationDataset(open_source("folder", tmp_path, "train"), TrainTransform(cfg), seed=3)
    first = ds[1]
    assert torch.equal(first["image"], ds[1]["image"]) and torch.equal(first["mask"], ds[1]["mask"])
    ds.set_epoch(1)
    assert not torch.equal(first["image"], ds[1]["image"])
    other = SegmentationDataset(open_source("folder", tmp_path, "train"), TrainTransform(cfg), seed=4)
    assert not torch.equal(first["image"], other[1]["image"])
    batch = torch.utils.data.default_collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 32, 32) and batch["image"].dtype == torch.uint8
    assert batch["mask"].dtype == torch.uint8


@pytest.mark.parametrize("kwargs,message", [
    ({"crop_size": [0, 512]}, r"data.train.crop_size must be two positive sizes \[height, width\], got \[0, 512\]"),
    ({"ratio_range": [2.0, 0.5]}, r"data.train.ratio_range must be \[low, high\]"),
    ({"cat_max_ratio": 0.0}, r"data.train.cat_max_ratio must be in \(0, 1\], got 0.0"),
    ({"flip_prob": 1.5}, r"data.train.flip_prob must be in \[0, 1\], got 1.5"),
])
def test_bad_transform_config_names_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainTransformConfig(**kwargs)


def test_normalize_on_the_device_matches_the_formula_and_needs_statistics():
    from scrnet.data import Normalize

    image = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    x = torch.from_numpy(image.transpose(2, 0, 1).copy())[None]
    out = Normalize(MEAN, STD)(x)
    expected = (image.transpose(2, 0, 1).astype(np.float64) / 255 - 0.5) / 0.25
    assert out.dtype == torch.float32 and out.shape == (1, 3, 17, 23)
    assert np.abs(out[0].numpy() - expected).max() < 1e-5
    cl = Normalize(MEAN, STD)(x, torch.channels_last)
    assert cl.is_contiguous(memory_format=torch.channels_last) and torch.equal(cl, out)
    with pytest.raises(ValueError, match="input normalisation needs 3 means and 3 positive stds"):
        Normalize(None, STD)
    with pytest.raises(ValueError, match="expected uint8 images B x 3 x H x W"):
        Normalize(MEAN, STD)(torch.zeros(1, 1, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="got torch.float32"):  # already scaled to 0..1: would be divided twice
        Normalize(MEAN, STD)(x.float() / 255)
