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


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
