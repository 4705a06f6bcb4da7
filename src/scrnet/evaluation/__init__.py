from .metrics import ConfusionMatrix

__all__ = ["ConfusionMatrix"]
