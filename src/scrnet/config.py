"""The run configuration: ``model``, ``data``, ``train`` and ``eval`` sections, typed, with every default written
here (the schemas of the training loss and optimiser too, so that the engine imports them from here and never the
other way round). :func:`load_config` reads a YAML file and ``key=value`` overrides; an unknown key, a wrong type
or a bad value fails at once with one line naming the key. Each run writes its fully resolved config next to its
outputs.

A resolved config owns the facts that defaults leave open: ``data.mean``/``data.std`` come from the backbone's
weights description (:func:`resolve`) and from then on are read from the config (or the checkpoint that stores
it), never worked out again. Configs carry ``format_version``; :func:`upgrade_config` maps older ones.
"""

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from omegaconf import OmegaConf

from .data.build import DataConfig
from .data.transforms import Normalize
from .errors import ConfigError
from .models import ModelConfig, list_models, model_config
from .models import apply_overrides as apply_model_overrides
from .models.backbones import BACKBONES
from .models.config import drop_unused_options
from .overrides import apply_overrides, as_update, first_line

__all__ = ["CONFIG_FORMAT", "BoundaryConfig", "Config", "ConfigError", "DataConfig", "EvalConfig", "LossConfig",
           "ModelConfig", "OptimConfig", "TrainConfig", "config_from_dict", "config_to_dict", "config_to_yaml",
           "load_config", "load_model_config", "normalization", "resolve", "upgrade_config"]

CONFIG_FORMAT = 5
AMP_MODES = ("none", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")
TRAIN_COMPILE_MODES = ("none", "default", "max-autotune-no-cudagraphs")
INIT_RNG_MODES = ("per_module", "shared_stream")
OPTIMIZERS = ("sgd", "adamw")


@dataclass
class LossConfig:
    ohem: bool = False  # online hard example mining (PSPNet/SFNet style)
    ohem_thresh: float = 0.7  # keep pixels whose ground-truth probability is below this ...
    # ... and at least this many of the hardest pixels per batch of train.batch_size images (all processes together):
    # each process and micro-batch keeps its share, so the floor does not change with the number of GPUs
    ohem_min_kept: int = 100000
    class_weights: Optional[list[float]] = None  # per-class weights of the cross-entropy
    aux_weight: float = 0.4  # weight of each deep-supervision head's loss (model.deep_supervision)

    def __post_init__(self):
        if not 0 < self.ohem_thresh <= 1:
            raise ConfigError(f"train.loss.ohem_thresh must be in (0, 1], got {self.ohem_thresh}")
        if self.ohem_min_kept < 0:
            raise ConfigError(f"train.loss.ohem_min_kept must be >= 0, got {self.ohem_min_kept}")
        if self.aux_weight < 0:
            raise ConfigError(f"train.loss.aux_weight must be >= 0, got {self.aux_weight}")


@dataclass
class OptimConfig:
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9  # SGD only
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # AdamW only
    weight_decay: float = 5e-4
    head_lr_mult: float = 1.0  # learning-rate multiplier for the decoder (everything but the backbone)
    offset_lr_mult: float = 1.0  # further multiplier for SRM's / DySample's offset and mask branches (1: none)
    no_decay_norm_bias: bool = True  # no weight decay on 1-D parameters (norm weights, biases, scales)
    poly_power: float = 0.9
    min_lr: float = 0.0  # poly decays to this
    warmup_iters: int = 0
    warmup_ratio: float = 1e-6  # warm-up starts at lr * warmup_ratio

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"train.optim.optimizer must be one of {list(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.lr <= 0:
            raise ConfigError(f"train.optim.lr must be positive, got {self.lr}")
        if self.offset_lr_mult <= 0:
            raise ConfigError(f"train.optim.offset_lr_mult must be positive, got {self.offset_lr_mult}")


@dataclass
class TrainConfig:
    max_iters: int = 80000
    batch_size: int = 16  # total over all processes (and micro-batches)
    # micro-batches per optimiser step: each process's share of batch_size is split into this many, run one after
    # the other and their gradients summed (less memory, the same total batch; BatchNorm sees each micro-batch alone)
    accumulate: int = 1
    num_workers: int = 4  # data loading processes per training process
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    amp: str = "none"  # none | bf16 | fp16 (fp16 on CUDA only, with a GradScaler)
    channels_last: bool = False
    compile: str = "none"  # torch.compile of the network for training: none | default | max-autotune-no-cudagraphs
    device: str = "auto"  # auto (CUDA when available) | cpu | cuda
    seed: int = 0
    # how the initial weights are drawn from train.seed: per_module (each part of the network from its own generator,
    # seeded from (seed, its qualified name): two variants share the initial weights of every module both have) |
    # shared_stream (one stream in the order the modules are built: what configs before format 5 trained with)
    init_rng: str = "per_module"
    log_interval: int = 50  # iterations between metric-log lines
    val_interval: int = 4000  # iterations between validations (0: only at the end)
    val_boundary: bool = False  # validation also computes the published boundary metrics (eval.boundary settings)
    checkpoint_interval: int = 4000  # iterations between checkpoints (and one at the end)
    keep_last: int = 3  # periodic checkpoints kept, besides best.pth
    max_nonfinite: int = 5  # consecutive non-finite losses before the run aborts
    # iterations between host reads of the non-finite-loss and stop flags. 1: every step waits for its flag (the
    # update of a non-finite loss is skipped on the host). N > 1: the step never waits (the fused optimiser skips
    # that update on the device, or AMP's scaler does); skipped updates are reported, max_nonfinite applied and a
    # SIGINT/SIGTERM honoured at the next read, at most N - 1 iterations later
    check_interval: int = 1
    tensorboard: bool = True  # scalars and prediction images when tensorboard is installed
    cudnn_benchmark: bool = True  # CUDA: let cuDNN pick the fastest kernels for the fixed crop size
    tf32: bool = True  # CUDA: TF32 for float32 matrix products and convolutions (float32 matmul precision "high")
    dist_timeout_s: int = 600  # torchrun: seconds a collective may wait before the process group gives up

    def __post_init__(self):
        for key in ("max_iters", "batch_size", "accumulate", "log_interval", "checkpoint_interval", "keep_last",
                    "max_nonfinite", "check_interval", "dist_timeout_s"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"train.{key} must be positive, got {getattr(self, key)}")
        for key in ("num_workers", "val_interval"):
            if getattr(self, key) < 0:
                raise ConfigError(f"train.{key} must be >= 0, got {getattr(self, key)}")
        if self.batch_size % self.accumulate:
            raise ConfigError(f"train.batch_size {self.batch_size} does not split into train.accumulate="
                              f"{self.accumulate} equal micro-batches")
        if self.amp not in AMP_MODES:
            raise ConfigError(f"train.amp must be one of {list(AMP_MODES)}, got {self.amp!r}")
        if self.device not in DEVICES:
            raise ConfigError(f"train.device must be one of {list(DEVICES)}, got {self.device!r}")
        if self.init_rng not in INIT_RNG_MODES:
            raise ConfigError(f"train.init_rng must be one of {list(INIT_RNG_MODES)}, got {self.init_rng!r}")
        if self.compile not in TRAIN_COMPILE_MODES:
            raise ConfigError(f"train.compile must be one of {list(TRAIN_COMPILE_MODES)}, got {self.compile!r}")


EVAL_MODES = ("whole", "slide")


@dataclass
class BoundaryConfig:
    """The published boundary metrics of ``scrnet eval``: Boundary IoU by dilation ratio, boundary F-scores at
    pixel tolerances, mIoU in distance bands from ground-truth boundaries."""

    enabled: bool = True
    dilation_ratio: float = 0.02  # Boundary IoU band = ratio x image diagonal (Cheng et al.'s default)
    f_tolerances: list[int] = field(default_factory=lambda: [3, 5, 9, 12])  # pixels
    # pooled: ours (precision and recall pooled over the split, inner 8-neighbour contour); per_image: the published
    # convention (Gated-SCNN / DAVIS: F per image and class, averaged over images, contour seg2bmap's)
    f_mode: str = "pooled"
    distance_bands: list[float] = field(default_factory=lambda: [0, 2, 4, 8, 16])  # band edges, pixels

    def __post_init__(self):
        if not 0 < self.dilation_ratio < 1:
            raise ConfigError(f"eval.boundary.dilation_ratio must be in (0, 1), got {self.dilation_ratio}")
        if not self.f_tolerances or min(self.f_tolerances) < 0:
            raise ConfigError(f"eval.boundary.f_tolerances must be pixel distances >= 0, got {self.f_tolerances}")
        if self.f_mode not in ("pooled", "per_image"):
            raise ConfigError(f"eval.boundary.f_mode must be pooled or per_image, got {self.f_mode!r}")
        bands = list(self.distance_bands)
        if not bands or bands[0] != 0 or bands != sorted(set(bands)):
            raise ConfigError(f"eval.boundary.distance_bands must be increasing edges starting at 0, got {bands}")


@dataclass
class EvalConfig:
    mode: str = "whole"  # whole | slide
    crop_size: list[int] = field(default_factory=lambda: [1024, 1024])  # slide window (height, width)
    stride: list[int] = field(default_factory=lambda: [768, 768])  # slide stride (height, width)
    tta: bool = False  # multi-scale (+ flip) test-time augmentation, softmax probabilities averaged
    scales: list[float] = field(default_factory=lambda: [0.5, 0.75, 1.0, 1.25, 1.5, 1.75])
    flip: bool = True  # with tta: also the horizontal mirror of every scale
    # slide: windows run through the network together (its batch: images x this); bounded for memory, and the logits
    # are the one-at-a-time ones up to the rounding of batched kernels
    window_batch: int = 4
    boundary_width: int = 3  # BIoU*, our own fixed-band boundary IoU ("biou"/"mbiou" in the eval JSON), in pixels
    boundary: BoundaryConfig = field(default_factory=BoundaryConfig)  # the published boundary metrics

    def __post_init__(self):
        if self.mode not in EVAL_MODES:
            raise ConfigError(f"eval.mode must be one of {list(EVAL_MODES)}, got {self.mode!r}")
        for key in ("crop_size", "stride"):
            value = getattr(self, key)
            if len(value) != 2 or min(value) <= 0:
                raise ConfigError(f"eval.{key} must be two positive sizes [height, width], got {value}")
        if not self.scales or min(self.scales) <= 0:
            raise ConfigError(f"eval.scales must be positive factors, got {self.scales}")
        if self.boundary_width < 1:
            raise ConfigError(f"eval.boundary_width must be >= 1 pixel, got {self.boundary_width}")
        if self.window_batch < 1:
            raise ConfigError(f"eval.window_batch must be >= 1 window per pass, got {self.window_batch}")



@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    format_version: int = CONFIG_FORMAT  # of this schema; older configs are upgraded on loading


def resolve(cfg: Config) -> Config:
    """Fill, in place, what the config leaves to the model: ``data.mean``/``data.std`` from the backbone's weights
    description when unset. Idempotent; :func:`load_config`, :func:`config_from_dict`, the trainer and
    ``save_checkpoint`` call it, so every config that reaches data or a checkpoint is resolved."""
    norm = BACKBONES[cfg.model.backbone].normalization
    if cfg.data.mean is None:
        cfg.data.mean = list(norm.mean)
    if cfg.data.std is None:
        cfg.data.std = list(norm.std)
    return cfg


def normalization(cfg: Config) -> Normalize:
    """The input normalisation of a run: the one place that turns the config's mean/std into the transform."""
    return Normalize(resolve(cfg).data.mean, cfg.data.std)


# Keys renamed or re-scoped by each format version: {version that changed them: {old dotted key: new dotted key}}.
RENAMED: dict[int, dict[str, str]] = {2: {"model.aux_weight": "train.loss.aux_weight"}}


def _flat_keys(d: dict, prefix: str = "") -> list[str]:
    keys = []
    for k, v in d.items():
        keys += _flat_keys(v, f"{prefix}{k}.") if isinstance(v, dict) else [f"{prefix}{k}"]
    return keys


def _pop(d: dict, dotted: str):
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.get(p)
        if not isinstance(d, dict):
            return None, False
    return (d.pop(leaf), True) if leaf in d else (None, False)


def _put(d: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    for p in parents:
        d = d.setdefault(p, {})
    d.setdefault(leaf, value)  # a value already given under the new key wins


def _rename(d: dict, first_step: int, origin: str, quiet: bool) -> None:
    for step in range(first_step, CONFIG_FORMAT + 1):
        for old, new in RENAMED.get(step, {}).items():
            value, found = _pop(d, old)
            if found:
                if not quiet:
                    warnings.warn(f"{origin}: {old} is now {new} (config format {step}); read as {new}={value}",
                                  FutureWarning, stacklevel=3)
                _put(d, new, value)


def upgrade_config(d: dict, origin: str = "config", quiet: bool = False, stored: bool = False) -> dict:
    """A plain config dict of any format version as the current one (a new dict; ``format_version`` set).

    Version 1 (no ``format_version``): ``model.aux_weight`` becomes ``train.loss.aux_weight`` and
    ``model.drop_path_rate`` is dropped for backbones other than VAN (it never applied to them). Versions 1-2 of a
    ``stored`` config (a checkpoint's, an eval JSON's: resolved, every key written): ``model.srm.sample_from``, new
    in version 3 with the default ``coarse``, is set to ``upsampled``, what those networks computed. Version 4 added
    ``model.fusion`` (default ``conv3x3``, what older networks computed) and moved ``model.context.attention``'s
    default to ``cbam`` (always written in stored configs): nothing to pin. Version 5 added ``train.init_rng``
    (default ``per_module``); a stored config of versions 1-4 is pinned to ``shared_stream``, how its weights were
    drawn. A hand-written file gets the current defaults. A newer version
    raises :class:`ConfigError` naming ``origin``, both versions and the keys this version does not know. Renamed
    keys in a file written by hand are upgraded with a warning (unless ``quiet``, as for stored checkpoints).
    """
    import copy

    d = copy.deepcopy(dict(d))
    version = d.pop("format_version", 1)
    if not isinstance(version, int) or version > CONFIG_FORMAT:
        known = set(_flat_keys(OmegaConf.to_container(OmegaConf.structured(Config))))
        unknown = [k for k in _flat_keys(d) if k not in known]
        raise ConfigError(f"{origin} has config format version {version}, newer than this scrnet's {CONFIG_FORMAT} "
                          f"(unknown keys: {unknown or 'none'}); upgrade scrnet to read it")
    _rename(d, version + 1, origin, quiet)
    if version < 2:
        model = d.get("model") if isinstance(d.get("model"), dict) else {}
        backbone = model.get("backbone")
        if backbone in BACKBONES and "drop_path_rate" not in BACKBONES[backbone].options:
            model.pop("drop_path_rate", None)
    if version < 3 and stored:
        srm = d.get("model", {}).get("srm") if isinstance(d.get("model"), dict) else None
        if isinstance(srm, dict) and "sample_from" not in srm:
            srm["sample_from"] = "upsampled"
    if version < 5 and stored and isinstance(d.get("train"), dict):
        d["train"].setdefault("init_rng", "shared_stream")
    d["format_version"] = CONFIG_FORMAT
    return d


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> Config:
    """A YAML config (sections model/data/train/eval; ``model.name`` picks the zoo variant whose config the
    ``model`` section then overrides) with dotted ``key=value`` overrides applied last; resolved."""
    try:
        raw = OmegaConf.load(path) if path is not None else OmegaConf.create({})
        cli = as_update(list(overrides or []))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except Exception as exc:
        raise ConfigError(f"cannot parse {path or 'overrides'}: {first_line(exc)}") from None
    raw = upgrade_config(OmegaConf.to_container(raw) or {}, str(path or "config"))
    cli = OmegaConf.to_container(cli)
    _rename(cli, 2, "override", quiet=False)  # overrides are read at the current format; old names still work
    name = cli.get("model", {}).get("name") or raw.get("model", {}).get("name") or "scrnet_r18"
    try:
        return resolve(apply_overrides(Config(model=model_config(name)), raw, cli))
    except ValueError as exc:
        raise ConfigError(f"bad config{f' in {path}' if path else ''}: {exc}") from None


def load_model_config(path: str | Path, overrides: list[str] | None = None) -> ModelConfig:
    """The ``model`` section of a YAML config file, read exactly as ``scrnet train`` reads the file (upgraded from
    older config formats, validated), with model-key ``overrides`` (``srm.mode=pixel``; a leading ``model.`` is
    accepted). A file without a ``model`` section naming a zoo variant is a ConfigError."""
    try:
        raw = OmegaConf.to_container(OmegaConf.load(path)) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except Exception as exc:
        raise ConfigError(f"cannot parse {path}: {first_line(exc)}") from None
    section = raw.get("model") if isinstance(raw, dict) else None
    if not isinstance(section, dict) or "name" not in section:
        raise ConfigError(f"{path}: expected a 'model' section with a 'name' (one of {list_models()})")
    return apply_model_overrides(load_config(path).model, overrides)


def config_to_yaml(cfg: Config) -> str:
    return OmegaConf.to_yaml(OmegaConf.structured(cfg))


def config_to_dict(cfg: Config) -> dict:
    return OmegaConf.to_container(OmegaConf.structured(cfg))


def interpolations(d, prefix: str = "") -> list[str]:
    """The dotted keys of ``d`` (nested dicts and lists) whose string values hold an OmegaConf interpolation."""
    found = []
    items = d.items() if isinstance(d, dict) else enumerate(d) if isinstance(d, list) else ()
    for k, v in items:
        key = f"{prefix}{k}"
        if isinstance(v, (dict, list)):
            found += interpolations(v, key + ".")
        elif isinstance(v, str) and "${" in v:
            found.append(key)
    return found


def config_from_dict(d: dict, origin: str = "stored config") -> Config:
    """The inverse of :func:`config_to_dict` (for configs stored in checkpoints, eval JSON files and published
    folders: files someone else may have made), upgraded from older format versions and resolved. Stored configs
    are data: one holding an interpolation (``${...}``, which OmegaConf would resolve, e.g. from the loading
    machine's environment) is refused, naming the file and key and never the value."""
    if not isinstance(d, dict):
        raise ConfigError(f"{origin}: the stored config is not a mapping")
    found = interpolations(d)
    if found:
        raise ConfigError(f"{origin}: the stored config holds an interpolation at {found[0]}"
                          f"{f' (and {len(found) - 1} more)' if len(found) > 1 else ''}; stored configs are data "
                          f"and are not resolved, so this file is refused")
    d = upgrade_config(d, origin, quiet=True, stored=True)
    if isinstance(d.get("model"), dict):
        drop_unused_options(d["model"])  # options the stored network never used take their defaults
    return resolve(OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(Config), d)))
