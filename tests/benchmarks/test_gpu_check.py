"""``benchmarks/gpu_check.py`` runs end to end on the CPU at a tiny size."""

import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_benchmark

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    """benchmarks/gpu_check.py cannot rot: its CPU sections run here (compile is in the slow variant)."""
    out = tmp_path / "report.json"
    result = run_benchmark("gpu_check.py", "--quick", "--models", "scrnet_effl0", "fpn_r18", "--skip", "compile",
                           "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(out.read_text())
    assert not [k for k, v in report.items() if isinstance(v, str) and v.startswith("FAILED")], report
    assert report["eval_amp_full_res"]["bf16"]["finite"]
    cast = report["eval_amp_full_res"]["cast_bfloat16"]  # weights and input in bfloat16, as --precision cast
    assert cast["finite"] and cast["argmax_agreement"] > 0.95
    assert set(report["fps_deploy"]) == {"graph=False,channels_last=False", "graph=False,channels_last=True"}
    assert all(row["bf16"]["finite"] for row in report["amp_train_step"].values())
    assert report["ohem"]["loss_abs_diff"] < 1e-6 and report["eval_split"]["miou_equal"]
    assert max(report["channels_last"].values()) < 1e-4


@pytest.mark.slow
def test_gpu_check_with_compile_on_the_cpu(tmp_path):
    result = subprocess.run([sys.executable, "gpu_check.py", "--quick", "--models", "scrnet_effl0", "--only",
                             "compile"], cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=900)
    assert result.returncode == 0 and "FAILED" not in result.stdout, result.stdout[-2000:] + result.stderr[-2000:]


def test_gpu_profile_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    out = tmp_path / "profile.json"
    result = run_benchmark("gpu_profile.py", "scrnet_van_b1", "--size", "64", "128", "--dtype", "bfloat16",
                           "--calls", "2", "--rows", "5", "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(out.read_text())
    parts = report["parts_ms"]
    assert parts["decoder_and_head"] == pytest.approx(parts["whole"] - parts["backbone"])
    assert 0 < len(report["ops"]) <= 5 and all(0 < r["share"] <= 1 for r in report["ops"])


def test_van_lka_runs_at_a_tiny_size_on_the_cpu(tmp_path):
    out = tmp_path / "van.json"
    result = run_benchmark("van_lka.py", "--quick", "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    import json

    report = json.loads(out.read_text())
    assert len(report["convs_ms"]) == 4 and all(r["phases_vs_native_rel_diff"] < 1e-2 for r in report["convs_ms"])
    assert report["end_to_end"]["logits_rel_diff"] < 5e-2  # bfloat16 rounding in a different order
