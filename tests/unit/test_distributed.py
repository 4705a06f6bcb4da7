"""Process-group set-up."""

import pytest
import torch

from scrnet.distributed import init_distributed
from scrnet.errors import ConfigError


def test_more_processes_than_gpus_fails_with_one_line(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match=r"torchrun started 2 processes on this node but only 1 CUDA device\(s\) "
                                          r"are visible \(LOCAL_RANK 1\); use --nproc_per_node 1"):
        init_distributed("cuda")
