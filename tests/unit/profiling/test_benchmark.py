"""``scrnet benchmark`` input checks."""

import pytest
from cli_helpers import run_like_subprocess


def test_benchmark_rejects_a_zero_size_with_one_line():
    result = run_like_subprocess("benchmark", "scrnet_r18", "--size", "0", "0")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "size and batch must be positive" in result.stderr


def test_benchmark_refuses_a_cuda_graph_without_cuda_and_with_compile():
    for extra, message in ((["--cuda-graph"], "a CUDA graph (--cuda-graph) needs device cuda"),
                           (["--cuda-graph", "--compile", "--device", "cuda"], None)):
        result = run_like_subprocess("benchmark", "scrnet_r18", *extra)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        if message:
            assert message in result.stderr
    from scrnet.profiling.benchmark import benchmark

    with pytest.raises(ValueError, match="device cuda"):
        benchmark([("fpn_r18", "torch")], cuda_graph=True)
    with pytest.raises(ValueError, match="precision"):
        benchmark([("fpn_r18", "torch")], precision="half")
    with pytest.raises(ValueError, match="compile mode"):
        benchmark([("fpn_r18", "torch")], compile_mode="fast")


def test_cast_precision_runs_the_model_in_the_requested_dtype():
    """--precision cast converts weights and input (what a float16 deployment runs); the output keeps that dtype.
    (Its closeness to float32 is checked with real weights by gpu_check.py's eval_amp_full_res.)"""
    import torch

    from scrnet.profiling.benchmark import _runner, benchmark

    ref = _runner("scrnet_effl0", "torch", (64, 128), 1, "cpu", "float32", False, None)
    cast = _runner("scrnet_effl0", "torch", (64, 128), 1, "cpu", "bfloat16", False, None, precision="cast")
    assert next(cast.model.parameters()).dtype == torch.bfloat16
    torch.manual_seed(0)
    out = cast()
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    report = benchmark([("scrnet_effl0", "torch")], (64, 128), dtype="bfloat16", precision="cast", warmup=1,
                       rounds=1, measure_memory=False)
    assert report["conditions"]["precision"] == "cast" and report["conditions"]["cuda_graph"] is False
    assert ref().dtype == torch.float32


def test_split_dilation_reaches_the_benchmarked_model():
    from scrnet.models.backbones.van import LKA
    from scrnet.profiling.benchmark import _runner

    runner = _runner("scrnet_van_b1", "torch", (64, 128), 1, "cpu", "float32", False, None, split_dilation=True)
    lkas = [m for m in runner.model.modules() if isinstance(m, LKA)]
    assert len(lkas) == 10 and all(m.split_dilation for m in lkas)
    assert runner().shape == (1, 19, 64, 128)


def test_benchmark_sessions_do_not_spin():
    pytest.importorskip("onnxruntime")
    from scrnet.profiling.benchmark import onnxruntime_options

    options = onnxruntime_options(3)
    assert options.intra_op_num_threads == 3
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
