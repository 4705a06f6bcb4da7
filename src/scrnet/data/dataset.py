"""The torch Dataset over a :class:`DataSource`: loads, checks and maps one pair, then applies a transform."""

from collections.abc import Callable

import numpy as np
import torch

from .io import DataError, read_image, read_mask
from .source import DataSource
from .transforms import Normalize


class SegmentationDataset(torch.utils.data.Dataset):
    """Items are ``{"image": 3 x H x W uint8 RGB, "mask": H x W uint8 train ids, "index": int}`` with the train or
    eval transform (without one: the raw ``H x W x 3`` image and an int64 mask). Images are not normalised here:
    ``normalize`` (set by :func:`scrnet.data.build_dataset` from the config's mean/std) does it on the device.

    Random transforms draw from a generator seeded with ``(seed, epoch, index)``: a sample is the same whichever
    worker loads it, and :meth:`set_epoch` gives each epoch new draws.
    """

    def __init__(self, source: DataSource, transform: Callable | None = None, seed: int = 0,
                 normalize: Normalize | None = None):
        source.raise_problems()
        self.source = source
        self.transform = transform
        self.seed = seed
        self.epoch = 0
        self.normalize = normalize

    def __len__(self) -> int:
        return len(self.source.pairs)

    @property
    def class_names(self) -> list[str]:
        return self.source.class_names

    @property
    def palette(self) -> list[tuple[int, int, int]]:
        return self.source.palette

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The pair ``index`` as RGB uint8 and train-id uint8 arrays, checked: same size, labels in the set."""
        image_path, mask_path = self.source.pairs[index]
        image = read_image(image_path)
        raw = read_mask(mask_path)
        if raw.shape != image.shape[:2]:
            raise DataError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but its image {image_path} is "
                            f"{image.shape[1]}x{image.shape[0]} (width x height)")
        return image, self.source.to_train_ids(raw, mask_path)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """``ds[index]`` (augmentation drawn for the current epoch) or ``ds[(epoch, index)]`` (as samplers ask)."""
        epoch, index = key if isinstance(key, tuple) else (self.epoch, key)
        image, mask = self.load(index)
        if self.transform is None:
            return {"image": torch.from_numpy(image), "mask": torch.from_numpy(mask).long(), "index": index}
        rng = np.random.default_rng([self.seed, epoch, index])
        image_t, mask_t = self.transform(image, mask, rng)
        return {"image": image_t, "mask": mask_t, "index": index}
