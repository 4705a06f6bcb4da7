"""``scrnet benchmark`` input checks."""

import subprocess
import sys


def test_benchmark_rejects_a_zero_size_with_one_line():
    result = subprocess.run([sys.executable, "-m", "scrnet", "benchmark", "scrnet_r18", "--size", "0", "0"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "--size and --batch must be positive" in result.stderr
