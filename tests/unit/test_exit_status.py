"""The command line's one table of exit codes: each error class says whether it means bad usage."""

import pytest

from scrnet.checkpoint_io import CheckpointError
from scrnet.cli import UsageError, exit_status
from scrnet.data.io import DataError
from scrnet.deploy.export import ExportError
from scrnet.engine.trainer import TrainingAborted
from scrnet.errors import ConfigError, RequestError
from scrnet.experiments.compare import CompareError
from scrnet.experiments.study import StudyError
from scrnet.outputs import OutputRefused
from scrnet.profiling.benchmark import ProviderUnavailable


@pytest.mark.parametrize("error, code", [
    (UsageError, 2), (ConfigError, 2), (RequestError, 2), (CheckpointError, 2), (OutputRefused, 2),
    (CompareError, 2), (ProviderUnavailable, 2), (FileNotFoundError, 2),  # the input the user named does not fit
    (DataError, 1), (TrainingAborted, 1), (StudyError, 1), (ExportError, 1),  # the run failed
    (ValueError, None), (KeyError, None)])  # anything else is a bug in scrnet
def test_each_error_class_has_one_exit_code(error, code):
    assert exit_status(error("x")) == code
