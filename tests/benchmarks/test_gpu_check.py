"""``benchmarks/gpu_check.py`` runs end to end on the CPU at a tiny size."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py cannot rot: its CPU sections run here (compile is in the slow variant)."""
    out = tmp_path / "report.json"
    result = subprocess.run([sys.executable, "gpu_check.py", "--quick", "--models", "scrnet_effl0", "fpn_r18",
                             "--skip", "compile", "--json", str(out)], cwd=ROOT / "benchmarks",
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(out.read_text())
    assert not [k for k, v in report.items() if isinstance(v, str) and v.startswith("FAILED")], report
    assert report["eval_amp_full_res"]["bf16"]["finite"]
    assert all(row["bf16"]["finite"] for row in report["amp_train_step"].values())
    assert report["ohem"]["loss_abs_diff"] < 1e-6 and report["eval_split"]["miou_equal"]
    assert max(report["channels_last"].values()) < 1e-4


@pytest.mark.slow
def test_gpu_check_with_compile_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, "gpu_check.py", "--quick", "--models", "scrnet_effl0", "--only",
                             "compile"], cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "FAILED" not in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]
