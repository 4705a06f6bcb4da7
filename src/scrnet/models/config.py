"""Typed model configuration: every architectural switch of SCRNet, with its documented default.

A config is a plain dataclass; :func:`model_config` builds one from a zoo name plus overrides (a dict, or
``key=value`` strings as on the command line), checking every key and type with OmegaConf and every choice here,
so a bad value fails at once with one line naming the key and the value.
"""

from dataclasses import MISSING, dataclass, field, fields
from typing import Optional

from ..errors import ConfigError
from .backbones import BACKBONES
from .crm import ATTENTION_TYPES, CONTEXT_TYPES, STAGE_CHOICES
from .dysample import DYSAMPLE_SCOPES
from .head import FUSIONS
from .srm import MASK_INPUTS, SAMPLE_FROM, SRM_GATES, SRM_MODES


def _check_choice(key: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"{key} must be one of {list(choices)}, got {value!r}")


def _check_positive(key: str, value) -> None:
    if value is not None and value <= 0:
        raise ConfigError(f"{key} must be a positive number, got {value!r}")


# The options each choice uses; any other option of its section must keep its default (a non-default value would be
# ignored by the network, and two identical networks would differ in their configs: two `compare` groups).
SRM_MODE_OPTIONS = {
    "neighbor": ("hidden_channels", "mask_input", "sample_from", "offset_range", "gate"),
    "pixel": ("hidden_channels", "sample_from", "offset_range", "gate"),
    "bilinear": (),
    "dysample": ("dysample_groups", "dysample_scope"),
    "carafe": ("carafe_kernel", "carafe_encoder_kernel", "carafe_channels"),
}
CONTEXT_TYPE_OPTIONS = {
    "crm": ("attention", "stages", "reduce_threshold", "reduce_channels", "qk_ratio"),
    "ppm": ("ppm_bins",),
    "none": (),
}


def _default(f):
    return f.default_factory() if f.default is MISSING else f.default


def _unused_options(section, choice_key: str, used: dict) -> list[str]:
    """The options of ``section`` (a config dataclass) that its choice does not use and that differ from their
    default."""
    keep = set(used[getattr(section, choice_key)]) | {choice_key}
    return [f.name for f in fields(section) if f.name not in keep and getattr(section, f.name) != _default(f)]


def _refuse_unused(section, prefix: str, choice_key: str, used: dict) -> None:
    unused = _unused_options(section, choice_key, used)
    if unused:
        choice = getattr(section, choice_key)
        takes = ", ".join(f"{prefix}.{o}" for o in used[choice]) or "no other options"
        raise ConfigError(f"{prefix}.{unused[0]}={getattr(section, unused[0])!r} does not apply to "
                          f"{prefix}.{choice_key}={choice} (it takes {takes}); leave it at its default")


def drop_unused_options(model: dict) -> None:
    """In a stored model config (a plain dict, in place): remove the SRM and context options its mode and type do not
    use, so that they take their defaults. Such values never changed the network they were stored with (configs
    written before they were refused may hold them: the old defaults of ``mask_input`` or ``attention``, say)."""
    for key, choice_key, used, cls in (("srm", "mode", SRM_MODE_OPTIONS, SRMConfig),
                                       ("context", "type", CONTEXT_TYPE_OPTIONS, ContextConfig)):
        section = model.get(key)
        if not isinstance(section, dict):
            continue
        choice = section.get(choice_key, _default(next(f for f in fields(cls) if f.name == choice_key)))
        if choice in used:
            for name in [k for k in section if k != choice_key and k not in used[choice]]:
                del section[name]


@dataclass
class SRMConfig:
    mode: str = "neighbor"  # neighbor (the paper's design) | pixel (SFNet-like) | bilinear (plain FPN) | dysample
    #                         | carafe (published peers)
    hidden_channels: Optional[int] = None  # width of the offset branch's 1x1 conv; None means channels // 2
    mask_input: str = "hidden"  # what the neighbour mask conv reads: hidden (offset branch's map) | guide (cat[u,f'])
    dysample_groups: int = 4  # mode=dysample: channel groups, each with its own offsets (DySample's default)
    dysample_scope: str = "static"  # mode=dysample: static (offsets x 0.25) | dynamic (x 0.5 sigmoid(conv(g)))
    sample_from: str = "coarse"  # neighbor/pixel: sample g itself (one interpolation) | upsampled (u = bilinear(g))
    offset_range: Optional[float] = None  # neighbor/pixel: offsets bounded to +-range fine pixels by range * tanh(d /
    #                                       range) (identity near 0, so a fresh SRM is still bilinear); None: unbounded
    gate: str = "none"  # neighbor/pixel: none | guided (ours, after SFNet-Lite's gated alignment: a per-pixel
    #                     sigmoid gate from the offset branch blends the resampled map with plain bilinear upsampling)
    carafe_kernel: int = 5  # mode=carafe: reassembly neighbourhood (CARAFE's k_up)
    carafe_encoder_kernel: int = 3  # mode=carafe: the kernel-predicting conv's size (CARAFE's k_encoder)
    carafe_channels: int = 64  # mode=carafe: the channel compressor's width (CARAFE's C_m)

    def __post_init__(self):
        _check_choice("model.srm.mode", self.mode, SRM_MODES)
        _check_choice("model.srm.mask_input", self.mask_input, MASK_INPUTS)
        _check_positive("model.srm.hidden_channels", self.hidden_channels)
        _check_positive("model.srm.dysample_groups", self.dysample_groups)
        _check_choice("model.srm.dysample_scope", self.dysample_scope, DYSAMPLE_SCOPES)
        _check_choice("model.srm.sample_from", self.sample_from, SAMPLE_FROM)
        _check_positive("model.srm.carafe_channels", self.carafe_channels)
        _check_choice("model.srm.gate", self.gate, SRM_GATES)
        if self.offset_range is not None and (isinstance(self.offset_range, bool)
                                              or not isinstance(self.offset_range, (int, float))
                                              or not self.offset_range > 0):
            raise ConfigError(f"model.srm.offset_range must be null or a positive number of pixels, got "
                              f"{self.offset_range!r}")
        for key in ("carafe_kernel", "carafe_encoder_kernel"):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1 or value % 2 == 0:
                raise ConfigError(f"model.srm.{key} must be a positive odd integer, got {value!r}")
        _refuse_unused(self, "model.srm", "mode", SRM_MODE_OPTIONS)


@dataclass
class ContextConfig:
    type: str = "crm"  # crm (the paper's module) | ppm (PSPNet pyramid pooling, as SFNet) | none
    attention: str = "cbam"  # CRM attention: cbam (channel then spatial gates) | danet (channel then position
    #                           attention; the default before config format 4)
    stages: str = "all"  # CRM input: all four stages pooled to stride 32 | last stage only
    reduce_threshold: int = 1024  # CRM reduces the concatenation with a 1x1 conv only above this many channels
    reduce_channels: int = 1024  # ... to this many channels
    qk_ratio: int = 8  # CRM position attention: query/key channels = width / qk_ratio
    ppm_bins: list[int] = field(default_factory=lambda: [1, 2, 3, 6])

    def __post_init__(self):
        _check_choice("model.context.type", self.type, CONTEXT_TYPES)
        _check_choice("model.context.attention", self.attention, ATTENTION_TYPES)
        _check_choice("model.context.stages", self.stages, STAGE_CHOICES)
        for key in ("reduce_threshold", "reduce_channels", "qk_ratio"):
            _check_positive(f"model.context.{key}", getattr(self, key))
        _refuse_unused(self, "model.context", "type", CONTEXT_TYPE_OPTIONS)


@dataclass
class ModelConfig:
    name: str = "scrnet_r18"  # the zoo entry this config started from (informational)
    backbone: str = "resnet18"
    backbone_weights: Optional[str] = None  # None | "imagenet" | path to a state dict (.pth/.safetensors)
    deep_stem: bool = False  # ResNet only: V1c deep stem (3 convs) instead of the 7x7 conv
    drop_path_rate: Optional[float] = None  # VAN only: stochastic depth rate; None: the backbone's default (0.1)
    # mmsegmentation's backbone.frozen_stages: -1 nothing frozen | 0 the stem | N the stem and stages 1..N (4: the
    # whole backbone); frozen parameters are not trained and their BatchNorm statistics stay as loaded
    frozen_stages: int = -1
    num_classes: int = 19
    channels: int = 128  # decoder width C
    srm: SRMConfig = field(default_factory=SRMConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    fusion: str = "conv3x3"  # head: conv3x3 over the 4C-channel concat | reduce1x1 (1x1 to C, then 3x3; 13/36 MACs)
    deep_supervision: bool = True  # auxiliary heads on G2, G3, G4 (train mode only)
    pad_to: int = 32  # inputs are zero-padded to a multiple of this (the output stride), logits cropped back

    def __post_init__(self):
        _check_choice("model.backbone", self.backbone, BACKBONES)
        _check_choice("model.fusion", self.fusion, FUSIONS)
        for key in ("num_classes", "channels", "pad_to"):
            _check_positive(f"model.{key}", getattr(self, key))
        options = BACKBONES[self.backbone].options
        for key, unset in (("deep_stem", False), ("drop_path_rate", None)):
            if getattr(self, key) != unset and key not in options:
                raise ConfigError(f"model.{key} does not apply to backbone {self.backbone} (it takes "
                                 f"{', '.join(f'model.{o}' for o in options) or 'no options'})")
        if isinstance(self.frozen_stages, bool) or not isinstance(self.frozen_stages, int) \
                or not -1 <= self.frozen_stages <= 4:
            raise ConfigError(f"model.frozen_stages must be an integer from -1 (nothing frozen) to 4 (the whole "
                              f"backbone), got {self.frozen_stages!r}")
        if self.drop_path_rate is not None and not 0 <= self.drop_path_rate < 1:
            raise ConfigError(f"model.drop_path_rate must be in [0, 1), got {self.drop_path_rate}")
        if self.srm.mode == "dysample" and self.channels % self.srm.dysample_groups:
            raise ConfigError(f"model.srm.dysample_groups ({self.srm.dysample_groups}) must divide model.channels "
                             f"({self.channels})")
        if self.pad_to % 32:
            raise ConfigError(f"model.pad_to must be a multiple of 32 (the output stride), got {self.pad_to}")
