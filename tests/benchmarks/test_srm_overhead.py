"""``benchmarks/srm_overhead.py`` runs at a tiny size in both runtimes, with config overrides in its specs."""

from pathlib import Path

import pytest
from cli_helpers import run_benchmark

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("runtime", ["torch", "onnxruntime"])
def test_srm_overhead_runs_at_a_tiny_size(runtime):
    specs = ["fpn_r18:channels=16", "scrnet_r18:channels=16,srm.mask_input=hidden,srm.sample_from=coarse"]
    result = run_benchmark("srm_overhead.py", *specs, "--size", "64", "128", "--rounds", "1", "--runtime", runtime)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert ("onnxruntime" if runtime == "onnxruntime" else "eager PyTorch") in lines[0]
    assert lines[2].split()[-1] == "1.000" and len(lines) == 4
