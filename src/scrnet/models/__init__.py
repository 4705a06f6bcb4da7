from .config import ContextConfig, ModelConfig, SRMConfig
from .scrnet import SCRNet, build_model
from .zoo import ZOO, create_model, list_models, model_config

__all__ = ["ZOO", "ContextConfig", "ModelConfig", "SCRNet", "SRMConfig", "build_model", "create_model",
           "list_models", "model_config"]
