"""Errors every layer may raise (this module imports nothing of scrnet, so the lowest layers can use it).

:class:`ScrnetError` is the family of expected failures: bad input from a user or from a file (a config, a data set,
a checkpoint, runs that cannot be compared, an export that cannot be made). Its message is one line that names the
file, key or value. Each class says, in ``usage``, whether it means bad usage (a config, request, checkpoint or
other input the user named does not fit: exit status 2) or a run that failed (a data error met while running, an
aborted training, a failed check: exit status 1); the command line's one table (``scrnet.cli.exit_status``) reads
it. Any other exception is a bug in scrnet and is reported as one. Each subclass also derives from the builtin
exception that Python code caught before the family existed (``ValueError``, ``RuntimeError``).
"""


class ScrnetError(Exception):
    """An expected failure: bad input or a run that cannot go on; the message says what and where."""

    usage = False  # a run that failed (exit 1); subclasses that mean bad usage (exit 2) say True


class ConfigError(ScrnetError, ValueError):
    """A bad config: the message names the key (or file) and the value."""

    usage = True


class RequestError(ScrnetError, ValueError):
    """A request that does not fit the model or data it is made on (e.g. offsets of a model without SRM)."""

    usage = True
