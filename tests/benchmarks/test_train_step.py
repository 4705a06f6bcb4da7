"""``benchmarks/train_step.py`` runs the real training step of the Cityscapes recipe at a tiny size on the CPU, with
a ratio to eager float32 of the same model, the data loader's rate and a JSON of every figure."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_train_step_benchmark_runs_at_a_tiny_size(tmp_path):
    out = tmp_path / "train_step.json"
    result = subprocess.run([sys.executable, "train_step.py", "--models", "scrnet_effl0", "--settings", "bf16-cl",
                             "fp32-acc2", "--crop", "64", "64", "--batch", "2", "--iters", "1", "--warmup", "1",
                             "--image-size", "64", "128", "--images", "2", "--loader-workers", "1",
                             "--loader-batches", "2", "--json", str(out)],
                            cwd=ROOT / "benchmarks", capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    assert "Cityscapes recipe, batch 2, crop 64x64" in lines[0]
    rows = [line.split() for line in lines[2:5]]
    assert [r[:2] for r in rows] == [["scrnet_effl0", "fp32"], ["scrnet_effl0", "bf16-cl"],
                                     ["scrnet_effl0", "fp32-acc2"]]  # fp32: the baseline
    assert rows[0][-2:] == ["1.00x", "1.00x"]  # speed and memory against itself
    assert lines[5].startswith("data loader, 1 workers")
    report = json.loads(out.read_text())
    assert [r["setting"] for r in report["results"]] == ["fp32", "bf16-cl", "fp32-acc2"]
    assert all(r["images_per_s"] > 0 and r["peak_mem_mb"] > 0 for r in report["results"])
    assert report["loader_images_per_s"] > 0
