"""Applying overrides to a typed config dataclass, with one-line errors that name the key.

Used for the model section (``scrnet flops MODEL key=value``), whole run configs (``scrnet train``) and evaluation
overrides (``scrnet eval``): OmegaConf checks unknown keys and types, the dataclasses' ``__post_init__`` checks
choices and ranges.
"""

from typing import TypeVar

from omegaconf import DictConfig, OmegaConf

from .errors import ConfigError

T = TypeVar("T")


def first_line(exc: Exception, key_prefix: str = "") -> str:
    """An OmegaConf or validation error as one line, with the full key (prefixed) when the message lacks it."""
    key = getattr(exc, "full_key", None)
    msg = str(exc).splitlines()[0]
    return f"{key_prefix}{key}: {msg}" if key and key not in msg else msg


def as_update(overrides: dict | list[str] | DictConfig) -> DictConfig:
    """A nested dict or dotted ``key=value`` strings as an OmegaConf update."""
    if isinstance(overrides, DictConfig):
        return overrides
    if isinstance(overrides, dict):
        return OmegaConf.create(overrides)
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise ConfigError(f"override {bad[0]!r} is not of the form key=value")
    return OmegaConf.from_dotlist(list(overrides))


def apply_overrides(obj: T, *updates: dict | list[str] | DictConfig | None, key_prefix: str = "") -> T:
    """``obj`` (a dataclass instance) with each update merged in order, validated; raises ConfigError (a
    ValueError) in one line naming the key (prefixed with ``key_prefix``, e.g. ``model.``) and the value."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(obj), *(as_update(u) for u in updates if u))
        return OmegaConf.to_object(merged)
    except ValueError as exc:
        if not hasattr(exc, "full_key"):  # ours (not of the form key=value) or a __post_init__ check
            raise ConfigError(str(exc).splitlines()[0]) from None
        raise ConfigError(first_line(exc, key_prefix)) from None
    except Exception as exc:  # omegaconf's errors (unknown key, wrong type) carry the key
        raise ConfigError(first_line(exc, key_prefix)) from None


def flatten(d: dict, prefix: str = "") -> dict:
    """A nested dict as ``{"a.b.c": value}`` (dotted keys, as overrides name them)."""
    out = {}
    for key, value in d.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
