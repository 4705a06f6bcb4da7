"""Typed data configuration and the explicit mapping from a data set type to the function that opens it."""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..errors import ConfigError
from .ade20k import open_ade20k
from .bdd100k import open_bdd100k
from .cityscapes import open_cityscapes
from .dataset import SegmentationDataset
from .folder import open_folder
from .io import DataError
from .source import DataSource
from .transforms import EvalTransform, EvalTransformConfig, Normalize, TrainTransform, TrainTransformConfig

OPENERS: dict[str, Callable[[str | Path, str], DataSource]] = {
    "cityscapes": open_cityscapes,
    "bdd100k": open_bdd100k,
    "ade20k": open_ade20k,
    "folder": open_folder,
}


@dataclass
class DataConfig:
    type: str = "cityscapes"  # cityscapes | bdd100k | ade20k | folder
    root: str = "data/cityscapes"
    train_split: str = "train"
    val_split: str = "val"
    train: TrainTransformConfig = field(default_factory=TrainTransformConfig)
    eval: EvalTransformConfig = field(default_factory=EvalTransformConfig)
    # input normalisation (0..1 RGB); None: filled by scrnet.config.resolve from the backbone's weights description
    mean: Optional[list[float]] = None
    std: Optional[list[float]] = None

    def __post_init__(self):
        if self.type not in OPENERS:
            raise ConfigError(f"data.type must be one of {list(OPENERS)}, got {self.type!r}")


def open_source(data_type: str, root: str | Path, split: str) -> DataSource:
    if data_type not in OPENERS:
        raise DataError(f"unknown data set type {data_type!r}; expected one of {list(OPENERS)}")
    return OPENERS[data_type](root, split)


def open_checked(data_type: str, root: str | Path, split: str) -> DataSource:
    """``split`` of the data set at ``root``, opened and checked (layout problems raise, before anything runs):
    one :class:`ConfigError` line naming the type, root and split. What training and evaluation both open."""
    source = open_source(data_type, root, split)
    try:
        source.raise_problems()
    except DataError as exc:
        raise ConfigError(f"data (data.type={data_type}, data.root={root}, split {split}): {exc}") from None
    return source


def build_dataset(cfg: DataConfig, split: str, train: bool, seed: int = 0) -> SegmentationDataset:
    """The dataset of ``split`` with the train or the eval pipeline; raises :class:`DataError` on layout problems.

    Items are uint8 (images ``3 x H x W``, masks ``H x W``); the dataset's ``normalize`` (the config's mean/std)
    turns a batch of images into the model's input on the device: ``dataset.normalize(batch["image"].to(dev))``.
    ``cfg`` must be resolved (its ``mean``/``std`` set, as in any config from ``scrnet.config.load_config`` or
    ``scrnet.load_checkpoint(...).config``): no statistics are guessed here."""
    if cfg.mean is None or cfg.std is None:
        raise ConfigError("build_dataset: data.mean/data.std are unset; pass the data section of a resolved config "
                          "(scrnet.config.load_config, or scrnet.load_checkpoint(path).config.data) or set them")
    transform = TrainTransform(cfg.train) if train else EvalTransform(cfg.eval)
    return SegmentationDataset(open_source(cfg.type, cfg.root, split), transform, seed, Normalize(cfg.mean, cfg.std))
