"""``benchmarks/init_rng_spread.py``: the spread of paired differences, from variant folders of eval JSONs."""

import json
import statistics

from cli_helpers import run_benchmark


def cells(folder, values):
    for seed, (miou, biou) in values.items():
        cell = folder / f"seed{seed}"
        cell.mkdir(parents=True)
        (cell / "eval.json").write_text(json.dumps({"config": {"train": {"seed": seed}}, "miou": miou,
                                                    "boundary_iou": {"mean": biou}}))
    return folder


def test_paired_differences_by_seed_with_and_without_shared_initial_weights(tmp_path):
    base = {0: (0.90, 0.80), 1: (0.91, 0.82), 2: (0.88, 0.79)}
    arm = {0: (0.92, 0.80), 1: (0.90, 0.83), 2: (0.91, 0.81), 3: (0.95, 0.90)}  # seed 3 has no partner: left out
    a, b = cells(tmp_path / "a", base), cells(tmp_path / "b", arm)
    c, d = cells(tmp_path / "c", base), cells(tmp_path / "d", base)
    out = tmp_path / "spread.json"
    result = run_benchmark("init_rng_spread.py", "--shared", a, b, "--per-module", c, d, "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads(out.read_text())
    shared = written["shared_stream"]
    assert shared["seeds"] == [0, 1, 2]
    diffs = [round(100 * (arm[s][0] - base[s][0]), 2) for s in (0, 1, 2)]
    assert shared["miou"]["differences"] == diffs == [2.0, -1.0, 3.0]
    assert shared["miou"]["paired_sd"] == round(statistics.stdev(diffs), 2)
    assert shared["boundary_iou"]["differences"] == [0.0, 1.0, 2.0]
    assert written["per_module"]["miou"]["paired_sd"] == 0.0  # an arm against itself
    assert "paired sd 2.08" in result.stdout and "exploratory" in written["label"]


def test_one_pair_alone_on_chosen_seeds(tmp_path):
    base = {100: (0.90, 0.80), 101: (0.91, 0.82), 102: (0.88, 0.79), 103: (0.90, 0.80)}
    arm = {100: (0.92, 0.80), 101: (0.90, 0.83), 102: (0.91, 0.81), 103: (0.99, 0.99)}
    a, b = cells(tmp_path / "a", base), cells(tmp_path / "b", arm)
    out = tmp_path / "spread.json"
    result = run_benchmark("init_rng_spread.py", "--per-module", a, b, "--seeds", "100", "101", "102", "--json", out)
    assert result.returncode == 0, result.stderr[-2000:]
    written = json.loads(out.read_text())
    assert "shared_stream" not in written and written["per_module"]["seeds"] == [100, 101, 102]  # 103 left out
    assert written["per_module"]["miou"]["differences"] == [2.0, -1.0, 3.0]
    refused = run_benchmark("init_rng_spread.py", "--per-module", a, b, "--seeds", "100", "107")
    assert refused.returncode != 0 and "fewer than 2 seeds in common" in refused.stderr
    assert run_benchmark("init_rng_spread.py").returncode == 2  # neither pair
