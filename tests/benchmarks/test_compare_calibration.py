"""``benchmarks/compare_calibration.py`` runs end to end at a tiny size: eval JSON + npz files through the CLI, and
every part of it in-process."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_compare_calibration_runs_through_the_cli_at_a_tiny_size():
    result = subprocess.run([sys.executable, "compare_calibration.py", "--experiments", "2", "--cli-experiments", "1",
                             "--power-reps", "3"], cwd=ROOT / "benchmarks", capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    first = lines[:lines.index(next(line for line in lines if line.startswith("1b. coverage")))]
    rows = [line.split() for line in first if line.startswith(("seed noise", "image noise", "both"))]
    assert len(rows) == 6 and all(r[-1].endswith("%") for r in rows)
    # 3 seeds: never a verdict, whatever the data
    assert all(r[-4] == "0.0%" for r in rows if r[-4 - 1] == "3")
    for part in ("1b. coverage", "2. families", "3. looks", "4. equivalence", "5. a collapsing arm", "6. power"):
        assert any(line.startswith(part) for line in lines), part
    assert any(line.startswith("declared looks (O'Brien-Fleming)") for line in lines)
    power = lines[lines.index(next(line for line in lines if line.strip().startswith("seeds") and "0.5 sd" in line))
                  + 1:]
    assert [p.split()[0] for p in power] == ["5", "8", "10", "15", "20"]
