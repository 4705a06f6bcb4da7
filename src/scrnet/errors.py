"""Errors every layer may raise (this module imports nothing of scrnet, so the lowest layers can use it).

:class:`ScrnetError` is the family of expected failures: bad input from a user or from a file (a config, a data set,
a checkpoint, runs that cannot be compared, an export that cannot be made). Its message is one line that names the
file, key or value. The command line turns these into one line and exit status 2 (bad usage) or 1 (a run that
failed); any other exception is a bug in scrnet and is reported as one. Each subclass also derives from the builtin
exception that Python code caught before the family existed (``ValueError``, ``RuntimeError``).
"""


class ScrnetError(Exception):
    """An expected failure: bad input or a run that cannot go on; the message says what and where."""


class ConfigError(ScrnetError, ValueError):
    """A bad config: the message names the key (or file) and the value."""


class RequestError(ScrnetError, ValueError):
    """A request that does not fit the model or data it is made on (e.g. offsets of a model without SRM)."""
