"""``benchmarks/boundary_metrics.py`` and ``benchmarks/eval_speed.py`` run at a tiny size on the CPU, each with its
baseline measured in the same run."""

from cli_helpers import run_benchmark


def run(*args: str) -> list[str]:
    result = run_benchmark(*args)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip().splitlines()


def test_boundary_metrics_benchmark_runs_at_a_tiny_size():
    lines = run("boundary_metrics.py", "--size", "64", "128", "--rounds", "1")
    assert lines[0].startswith("per 64x128 image, cpu")
    assert [line.split()[0] for line in lines[1:]] == ["street", "random", "per-pixel"]
    assert all(line.split()[-2] == "ratio" and line.endswith("x") for line in lines[1:])


def test_eval_speed_benchmark_compares_with_and_without_the_boundary_metrics():
    lines = run("eval_speed.py", "--images", "1", "--size", "64", "128", "--modes", "whole")
    assert "1 synthetic 64x128 images, CPU float32" in lines[0]
    rows = [line.split() for line in lines[2:]]
    assert [r[:2] for r in rows] == [["whole", "cm+BIoU*"], ["whole", "all"]]
    assert rows[0][-1] == "1.00x"
