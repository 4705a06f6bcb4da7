"""Data sets in their real on-disk layouts, transforms, a synthetic street-scene generator and a data checker."""

from .build import OPENERS, DataConfig, build_dataset, open_source
from .dataset import SegmentationDataset
from .io import DataError, read_image, read_mask
from .source import IGNORE, DataSource
from .transforms import (
    EvalTransform,
    EvalTransformConfig,
    Normalize,
    TrainTransform,
    TrainTransformConfig,
)

__all__ = ["IGNORE", "OPENERS", "DataConfig", "DataError", "DataSource", "EvalTransform", "EvalTransformConfig",
           "Normalize",
           "SegmentationDataset", "TrainTransform", "TrainTransformConfig", "build_dataset", "open_source",
           "read_image", "read_mask"]
