from .config import ContextConfig, ModelConfig, SRMConfig
from .scrnet import SCRNet, SegmentationOutput, build_model
from .zoo import ZOO, apply_overrides, create_model, list_models, model_config

__all__ = ["ZOO", "ContextConfig", "ModelConfig", "SCRNet", "SRMConfig", "SegmentationOutput", "apply_overrides",
           "build_model", "create_model", "list_models", "model_config"]
