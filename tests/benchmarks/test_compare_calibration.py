"""``benchmarks/compare_calibration.py`` runs end to end at a tiny size: eval JSON + npz files through the CLI."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compare_calibration_runs_through_the_cli_at_a_tiny_size():
    result = subprocess.run([sys.executable, "compare_calibration.py", "--experiments", "1", "--samples", "50",
                             "--power-reps", "3"], cwd=ROOT / "benchmarks", capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    rows = [line.split() for line in lines if line.startswith(("seed noise", "image noise", "both"))]
    assert len(rows) == 6 and all(r[-1].endswith("%") for r in rows)
    # 3 seeds: never a verdict, whatever the data
    assert all(r[-4] == "0.0%" for r in rows if r[-4 - 1] == "3")
    power = lines[lines.index(next(line for line in lines if line.strip().startswith("seeds"))) + 1:]
    assert [p.split()[0] for p in power] == ["5", "8", "10", "15", "20"]
