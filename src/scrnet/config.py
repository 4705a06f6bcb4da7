"""The run configuration: ``model``, ``data``, ``train`` and ``eval`` sections, typed, with every default written
here. :func:`load_config` reads a YAML file and ``key=value`` overrides; an unknown key, a wrong type or a bad value
fails at once with one line naming the key. Each run writes its fully resolved config next to its outputs.
"""

from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from .data.build import DataConfig
from .engine.losses import LossConfig
from .engine.schedule import OptimConfig
from .errors import ConfigError  # noqa: F401  (re-exported: scrnet.config.ConfigError)
from .models import ModelConfig, model_config
from .overrides import apply_overrides, as_update, first_line

AMP_MODES = ("none", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    max_iters: int = 80000
    batch_size: int = 16  # total over all processes
    num_workers: int = 4  # data loading processes per training process
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    amp: str = "none"  # none | bf16 | fp16 (fp16 on CUDA only, with a GradScaler)
    channels_last: bool = False
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda
    seed: int = 0
    log_interval: int = 50  # iterations between metric-log lines
    val_interval: int = 4000  # iterations between validations (0: only at the end)
    checkpoint_interval: int = 4000  # iterations between checkpoints (and one at the end)
    keep_last: int = 3  # periodic checkpoints kept, besides best.pth
    max_nonfinite: int = 5  # consecutive non-finite losses before the run aborts
    tensorboard: bool = True  # scalars and prediction images when tensorboard is installed
    cudnn_benchmark: bool = True  # CUDA: let cuDNN pick the fastest kernels for the fixed crop size
    tf32: bool = True  # CUDA: TF32 for float32 matrix products and convolutions (float32 matmul precision "high")
    dist_timeout_s: int = 600  # torchrun: seconds a collective may wait before the process group gives up

    def __post_init__(self):
        for key in ("max_iters", "batch_size", "log_interval", "checkpoint_interval", "keep_last", "max_nonfinite",
                    "dist_timeout_s"):
            if getattr(self, key) <= 0:
                raise ValueError(f"train.{key} must be positive, got {getattr(self, key)}")
        for key in ("num_workers", "val_interval"):
            if getattr(self, key) < 0:
                raise ValueError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.amp not in AMP_MODES:
            raise ValueError(f"train.amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be one of {list(DEVICES)}, got {self.device!r}")


EVAL_MODES = ("whole", "slide")


@dataclass
class EvalConfig:
    mode: str = "whole"  # whole | slide
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])  # slide window (height, width)
    stride: list[int] = field(default_factory=lambda: [768, 768])  # slide stride (height, width)
    tta: bool = False  # multi-scale (+ flip) test-time augmentation, softmax probabilities averaged
    scales: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    flip: bool = True  # with tta: also the horizontal mirror of every scale
    boundary_width: int = 3  # boundary IoU band, in pixels

    def __post_init__(self):
        if self.mode not in EVAL_MODES:
            raise ValueError(f"eval.mode must be one of {list(EVAL_MODES)}, got {self.mode!r}")
        for key in ("crop_size", "stride"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) <= 0:
                raise ValueError(f"eval.{key} must be two positive sizes [height, width], got {value}")
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"eval.scales must be positive factors, got {self.scales}")
        if self.boundary_width < 1:
            raise ValueError(f"eval.boundary_width must be >= 1 pixel, got {self.boundary_width}")


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """A YAML config (sections model/data/train/eval; ``model.name`` picks the zoo variant whose config the
    ``model`` section then overrides) with dotted ``key=value`` overrides applied last."""
    try:
        raw = OmegaConf.load(path) if path is not None else OmegaConf.create({})
        cli = as_update(list(overrides or []))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except Exception as exc:
        raise ConfigError(f"cannot parse {path or 'overrides'}: {first_line(exc)}") from None
    name = OmegaConf.select(cli, "model.name") or OmegaConf.select(raw, "model.name") or "scrnet_r18"
    try:
        return apply_overrides(Config(model=model_config(name)), raw, cli)
    except ValueError as exc:
        raise ConfigError(f"bad config{f' in {path}' if path else ''}: {exc}") from None


def config_to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_to_dict(cfg: Config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def config_from_dict(d: dict) -> Config:
    """The inverse of :func:`config_to_dict` (for configs stored in checkpoints)."""
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), d))
