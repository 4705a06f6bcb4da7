import os

import pytest
import torch


def pytest_configure(config):
    """Pin the test run to the CPU unless it selects the ``gpu`` marker (``pytest -m gpu``): on a GPU machine,
    ``train.device=auto`` would otherwise pick CUDA in tests written for the CPU (bit-exact resume, the fp16
    "needs CUDA" error, a 2-process torchrun on one GPU). Hiding the GPUs also reaches the subprocesses the CLI
    tests start."""
    expr = config.getoption("markexpr") or ""
    if "gpu" not in expr.replace("not gpu", ""):
        os.environ["CUDA_VISIBLE_DEVICES"] = ""


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI (``CI=true``) a test skipped because an optional package is missing fails instead: CI installs every
    extra the tests use (``TEST_EXTRAS`` in the Makefile), so a missing one is a broken set-up, not a reason to
    test less. Skips for what CI cannot have (a GPU, a browser) stay skips."""
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("CI") == "true" and report.skipped and "could not import" in str(report.longrepr):
        report.outcome = "failed"
        report.longrepr = f"CI=true: an extra the tests need is not installed ({report.longrepr})"


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
