"""SCRNet: semantic segmentation with semantic (SRM) and contextual (CRM) refinement."""

from ._version import __version__
from .inference.segmenter import SegmentationResult, Segmenter
from .loading import LoadedCheckpoint, load_checkpoint, save_checkpoint
from .models import ModelConfig, SCRNet, build_model, create_model, list_models, model_config
from .pretrained import from_pretrained

__all__ = ["LoadedCheckpoint", "ModelConfig", "SCRNet", "SegmentationResult", "Segmenter", "__version__",
           "build_model", "create_model", "from_pretrained", "list_models", "load_checkpoint", "model_config",
           "save_checkpoint"]
