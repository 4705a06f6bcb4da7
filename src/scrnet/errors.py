"""Errors every layer may raise (this module imports nothing of scrnet, so the lowest layers can use it)."""


class ConfigError(ValueError):
    """A bad config: the message names the key (or file) and the value."""
