"""scrnet compare on constructed per-image counts (verdicts, pairing by seed, reproducibility, refusals) and scrnet
study on a tiny grid (runs, skips finished cells, refuses or re-runs stale ones, prints commands). The calibration of
the intervals on simulated experiments is in tests/unit/tools/test_intervals.py."""

import json
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import run

from scrnet.cli import main
from scrnet.config import config_to_dict, load_config
from scrnet.data.synthetic import generate_synthetic
from scrnet.evaluation.counts import PerImageCounts
from scrnet.evaluation.metrics import miou_from
from scrnet.experiments.compare import CompareError, compare, load_run
from scrnet.experiments.study import expand, run_study

CLASSES = ["a", "b", "c"]
N_IMAGES = 30


def image_counts(rng: np.random.Generator, accuracy: float) -> np.ndarray:
    """N x 3 x 3 confusion matrices: 1000 pixels per class and image, ``accuracy`` of them right (+ noise)."""
    cms = np.zeros((N_IMAGES, 3, 3), np.int64)
    for i in range(N_IMAGES):
        for k in range(3):
            right = int(np.clip(rng.normal(accuracy, 0.05), 0, 1) * 1000)
            cms[i, k, k] = right
            cms[i, k, (k + 1) % 3] = 1000 - right
    return cms


def write_run(path: Path, cms: np.ndarray, seed: int, overrides=(), split="val", classes=CLASSES) -> Path:
    cfg = config_to_dict(load_config(None, ["model.name=scrnet_effl0", f"model.num_classes={len(classes)}",
                                            f"train.seed={seed}", *overrides]))
    path.parent.mkdir(parents=True, exist_ok=True)
    inter = np.stack([np.diagonal(c) for c in cms])
    union = cms.sum(1) + cms.sum(2) - inter
    PerImageCounts.from_confusion([f"img{i:03d}.png" for i in range(len(cms))], cms, inter // 2, union // 2).save(
        path.with_suffix(".npz"))
    total = cms.sum(0)
    ious = np.diagonal(total) / (total.sum(0) + total.sum(1) - np.diagonal(total))
    record = {"miou": float(ious.mean()), "mbiou": 0.5, "iou": dict(zip(classes, map(float, ious))),
              "biou": dict(zip(classes, [0.5] * 3)), "num_images": len(cms), "dataset": "folder", "split": split,
              "class_names": list(classes), "per_image_counts": path.with_suffix(".npz").name, "config": cfg}
    path.write_text(json.dumps(record))
    return path


FIVE = (0, 1, 2, 3, 4)


def study_runs(tmp_path, acc_a, acc_b, seeds_a=FIVE, seeds_b=FIVE, seed_effect=None, noise_seed=0):
    rng = np.random.default_rng(noise_seed)
    paths = []
    for name, acc, seeds, over in (("base", acc_a, seeds_a, ["model.srm.mode=bilinear"]),
                                   ("other", acc_b, seeds_b, [])):
        for s in seeds:
            shift = 0 if seed_effect is None else seed_effect[s]
            paths.append(write_run(tmp_path / name / f"seed{s}.json", image_counts(rng, acc + shift), s, over))
    return paths


def comparison(result, metric="miou"):
    (c,) = [c for c in result["comparisons"] if c["metric"] == metric]
    return c


def test_a_group_better_by_construction_is_better_and_labels_name_the_differing_key(tmp_path):
    result = compare([load_run(p) for p in study_runs(tmp_path, 0.70, 0.80)])
    labels = [g["label"] for g in result["groups"]]
    assert labels == ["model.srm.mode=bilinear", "model.srm.mode=neighbor"]
    assert result["groups"][1]["overrides"] == {"model.srm.mode": "neighbor"}
    c = comparison(result)
    assert c["verdict"] == "better" and 0 < c["low"] < c["diff"] < c["high"]
    assert c["paired_seeds"] == [0, 1, 2, 3, 4] and c["pairing"] == "paired" and c["seeds"] == 5
    assert c["df"] > 1 and c["seed_var"] >= 0 and c["image_var"] > 0
    assert result["method"].startswith("paired t") and result["min_seeds"] == 5
    # the point estimate is the mean over seeds of each run's own mIoU difference, as scrnet eval computed them
    own = [g["miou"]["mean"] for g in result["groups"]]
    assert c["diff"] == pytest.approx(own[1] - own[0], abs=1e-12)
    worse = compare([load_run(p) for p in study_runs(tmp_path / "w", 0.80, 0.70)])
    assert comparison(worse)["verdict"] == "worse"


def test_groups_from_the_same_distribution_are_inconclusive(tmp_path):
    result = compare([load_run(p) for p in study_runs(tmp_path, 0.75, 0.75, noise_seed=3)])
    c = comparison(result)
    assert c["verdict"] == "inconclusive" and c["low"] < 0 < c["high"] and c["why"].startswith("p ")
    same = study_runs(tmp_path / "same", 0.75, 0.75)
    for a, b in zip(same[:5], same[5:]):  # identical counts: a difference of exactly zero
        Path(b.with_suffix(".npz")).write_bytes(Path(a.with_suffix(".npz")).read_bytes())
    exact = comparison(compare([load_run(p) for p in same]))
    assert exact["diff"] == 0 and exact["low"] == 0 == exact["high"] and exact["verdict"] == "inconclusive"
    # a stated margin (in points, as on the command line) turns an interval inside ±margin into "equivalent"
    assert comparison(compare([load_run(p) for p in same], margin=0.5))["verdict"] == "equivalent"


def test_fewer_seeds_than_min_seeds_is_inconclusive_whatever_the_interval(tmp_path):
    three = [load_run(p) for p in study_runs(tmp_path, 0.70, 0.80, seeds_a=(0, 1, 2), seeds_b=(0, 1, 2))]
    c = comparison(compare(three))
    assert c["low"] > 0 and c["verdict"] == "inconclusive" and c["why"].startswith("3 seeds")
    assert comparison(compare(three, min_seeds=3))["verdict"] == "better"
    code, out, err = run("compare", *(r.path for r in three))
    assert code == 0 and "inconclusive (3 seeds)" in out and "a verdict needs 5 seeds" in out, out


def test_seeds_are_paired_so_shared_seed_effects_cancel(tmp_path):
    effect = dict(enumerate([-0.10, 0.0, 0.10, -0.05, 0.05] * 2))  # a seed moves both groups alike
    paired = comparison(compare([load_run(p) for p in study_runs(tmp_path / "p", 0.70, 0.72, seed_effect=effect)]))
    unpaired = comparison(compare([load_run(p) for p in study_runs(tmp_path / "u", 0.70, 0.72,
                                                                   seeds_b=(5, 6, 7, 8, 9), seed_effect=effect)]))
    assert paired["paired_seeds"] == [0, 1, 2, 3, 4] and unpaired["paired_seeds"] == []
    assert unpaired["pairing"] == "unpaired" and unpaired["baseline_seeds"] == [0, 1, 2, 3, 4]
    assert paired["verdict"] == "better"
    assert unpaired["high"] - unpaired["low"] > 3 * (paired["high"] - paired["low"])


def test_partly_overlapping_seeds_are_refused_naming_the_runs_or_compared_unpaired(tmp_path):
    """No run is dropped: a group whose worst seed has no partner used to be compared on the others only."""
    paths = study_runs(tmp_path, 0.70, 0.72, seeds_b=(0, 1, 2, 3, 4, 5))
    runs = [load_run(p) for p in paths]
    with pytest.raises(CompareError, match="share only some seeds") as err:
        compare(runs)
    assert str(tmp_path / "other" / "seed5.json") in str(err.value)
    c = comparison(compare(runs, unpaired=True))
    assert c["pairing"] == "unpaired" and c["group_seeds"] == [0, 1, 2, 3, 4, 5] and c["seeds"] == 5
    code, out, err = run("compare", *paths)
    assert code == 2 and "seed5.json" in err and "--unpaired" in err and len(err.strip().splitlines()) == 1
    code, out, err = run("compare", *paths, "--unpaired")
    assert code == 0 and "(unpaired)" in out, err


def test_the_interval_is_deterministic_and_the_family_is_stated(tmp_path):
    runs = [load_run(p) for p in study_runs(tmp_path, 0.74, 0.76)]
    a, b = compare(runs), compare(runs)
    assert a == b  # the jackknife draws nothing
    assert a["family"]["size"] == 2 and a["family"]["source"] == "every comparison of this call"  # mIoU and BIoU*
    assert all(c["p_adjusted"] >= c["p"] for c in a["comparisons"]) and a["metrics_version"] is None


def test_cli_plan_makes_the_family_labels_the_rest_exploratory_and_records_looks(tmp_path):
    paths = study_runs(tmp_path, 0.70, 0.80)
    plan = tmp_path / "plan.yaml"
    plan.write_text("comparisons:\n  - [model.srm.mode=neighbor, model.srm.mode=bilinear]\nmetrics: [miou]\n"
                    "seeds: [0, 1, 2, 3, 4]\nmargin: 0.5\n")
    looks = tmp_path / "looks.jsonl"
    code, out, err = run("compare", *paths, "--plan", plan, "--looks", looks, "--json", tmp_path / "c.json",
                         "--markdown", tmp_path / "c.md")
    assert code == 0, err
    result = json.loads((tmp_path / "c.json").read_text())
    words = {c["metric"]: c["verdict"] for c in result["comparisons"]}
    assert words == {"miou": "better", "mbiou": "exploratory"} and result["margin"] == 0.5
    assert "family of 1 comparison (plan)" in out and "exploratory" in out
    assert "family of 1 comparison (plan)" in (tmp_path / "c.md").read_text()
    assert [json.loads(line)["seeds"] for line in looks.read_text().splitlines()] == [5]
    plan.write_text("comparisons: [[a, b]]\nseeds: [0]\n")
    code, out, err = run("compare", *paths, "--plan", plan)
    assert code == 2 and str(plan) in err and "seeds must be" in err and len(err.strip().splitlines()) == 1


def test_interval_covers_image_and_seed_variation(tmp_path):
    """With one image the interval only sees seeds; with many seeds of large spread it must widen."""
    calm = comparison(compare([load_run(p) for p in study_runs(tmp_path / "c", 0.70, 0.75)]))
    spread = {0: -0.15, 1: 0.0, 2: 0.15}
    rng = np.random.default_rng(1)
    paths = []
    for name, acc, over in (("base", 0.70, ["model.srm.mode=bilinear"]), ("other", 0.75, [])):
        for s in range(3):  # the seed effect differs between groups: the difference itself varies by seed
            shift = spread[s] if name == "other" else 0.0
            paths.append(write_run(tmp_path / "s" / name / f"seed{s}.json", image_counts(rng, acc + shift), s, over))
    noisy = comparison(compare([load_run(p) for p in paths]))
    assert noisy["high"] - noisy["low"] > 3 * (calm["high"] - calm["low"])


def test_miou_from_counts_skips_absent_classes():
    cm = np.array([[5, 0, 0], [0, 0, 0], [1, 0, 4]])
    assert miou_from(cm) == pytest.approx(np.mean([5 / 6, 4 / 5]))


def test_boundary_f_and_distance_bands_are_tabled_as_mean_and_sd_over_seeds(tmp_path):
    paths = study_runs(tmp_path, 0.70, 0.80)
    for i, path in enumerate(paths):  # F@3 = 0.90 + i/100, bands 0.5 + i/100 and 0.9
        record = json.loads(path.read_text())
        record["boundary_f"] = {"3": {"mean": 0.90 + i / 100, "per_class": {}}}
        record["distance_bands"] = [{"from": 0, "to": 2, "miou": 0.5 + i / 100}, {"from": 2, "to": None, "miou": 0.9}]
        path.write_text(json.dumps(record))
    code, out, err = run("compare", *paths, "--markdown", tmp_path / "c.md")
    assert code == 0, err
    table = (tmp_path / "c.md").read_text().split("Boundary F-score by tolerance")[1]
    assert "| group | F@3px | mIoU 0-2px | mIoU 2px+ |" in table
    # base: runs 0-4 -> F@3 mean 92.00, sd 1.58; other: runs 5-9 -> 97.00
    assert "| `model.srm.mode=bilinear` | 92.00 ± 1.58 | 52.00 ± 1.58 | 90.00 ± 0.00 |" in table
    assert "| `model.srm.mode=neighbor` | 97.00 ± 1.58 | 57.00 ± 1.58 | 90.00 ± 0.00 |" in table
    assert "F@3px" in out
    del record["boundary_f"], record["distance_bands"]  # one run without them: no such table
    path.write_text(json.dumps(record))
    code, out, err = run("compare", *paths)
    assert code == 0 and "F@3px" not in out, err


def test_boundary_f_of_the_two_conventions_is_named_and_never_pooled(tmp_path):
    paths = study_runs(tmp_path, 0.70, 0.80)
    for i, path in enumerate(paths):
        record = json.loads(path.read_text())
        record["boundary_f"] = {"3": {"mean": 0.90, "per_class": {}}}
        record["boundary_f_mode"] = "per_image"
        path.write_text(json.dumps(record))
    code, out, err = run("compare", *paths)
    assert code == 0 and "pF@3px" in out, err  # per image, as published
    record["boundary_f_mode"] = "pooled"  # one run scored the other way: no F table at all
    path.write_text(json.dumps(record))
    code, out, err = run("compare", *paths)
    assert code == 0 and "F@3px" not in out, err


def test_cli_compare_writes_json_markdown_and_forest_plot_and_picks_the_baseline(tmp_path):
    pytest.importorskip("matplotlib")
    paths = study_runs(tmp_path, 0.70, 0.80)
    code, out, err = run("compare", *paths, "--baseline", "model.srm.mode=neighbor", "--json", tmp_path / "c.json",
                         "--markdown", tmp_path / "c.md", "--plot", tmp_path / "forest.png")
    assert code == 0, err
    png = (tmp_path / "forest.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    result = json.loads((tmp_path / "c.json").read_text())
    assert result["baseline"] == "model.srm.mode=neighbor"
    c = comparison(result)
    assert c["group"] == "model.srm.mode=bilinear" and c["verdict"] == "worse"
    assert set(result["groups"][0]) >= {"label", "overrides", "runs", "seeds", "miou", "mbiou", "iou"}
    assert 0 <= result["groups"][0]["miou"]["mean"] <= 1
    assert "| `model.srm.mode=bilinear` |" in (tmp_path / "c.md").read_text()
    assert "worse" in out and "baseline" in out
    # by a run's path too
    code, out, _ = run("compare", *paths, "--baseline", paths[6])
    assert code == 0 and "Δ: against the baseline (model.srm.mode=neighbor)" in out


@pytest.mark.parametrize("change,key", [
    (dict(split="test"), "split"),
    (dict(classes=["a", "b", "z"]), "class_names"),
    (dict(overrides=["model.srm.mode=bilinear", "eval.mode=slide"]), "eval.mode"),
])
def test_non_comparable_runs_are_refused_with_one_line(tmp_path, change, key):
    paths = study_runs(tmp_path, 0.7, 0.8)
    rng = np.random.default_rng(0)
    kwargs = {"overrides": ["model.srm.mode=bilinear"], **change}
    odd = write_run(tmp_path / "odd.json", image_counts(rng, 0.7), 7, **kwargs)
    code, out, err = run("compare", *paths, odd)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and key in err and str(odd) in err and str(paths[0]) in err


def test_missing_counts_duplicate_seeds_and_bad_baseline_are_one_line(tmp_path):
    paths = study_runs(tmp_path, 0.7, 0.8)
    code, _, err = run("compare", paths[0], paths[0])
    assert code == 2 and "same seed" in err
    code, _, err = run("compare", *paths, "--baseline", "model.srm.mode=pixel")
    assert code == 2 and "matches no run or group" in err
    paths[1].with_suffix(".npz").unlink()
    code, _, err = run("compare", *paths)
    assert code == 2 and str(paths[1].with_suffix(".npz")) in err
    code, _, err = run("compare", tmp_path / "nowhere")
    assert code == 2 and "no eval JSON" in err


# ---- scrnet study ----

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return generate_synthetic(tmp_path_factory.mktemp("tiny"), num_train=4, num_val=2, size=(64, 64), seed=0)


def tiny_overrides(root) -> list[str]:
    return [f"data.root={root}", "data.type=folder", "model.name=scrnet_effl0", "model.num_classes=9",
            "model.channels=16", "model.backbone_weights=null", "train.max_iters=2", "train.batch_size=2",
            "train.num_workers=0", "train.val_interval=0", "train.checkpoint_interval=2", "train.tensorboard=false",
            "train.log_interval=1", "data.train.crop_size=[64,64]", "data.train.scale=[64,64]",
            "train.optim.warmup_iters=0"]


def test_expand_is_seed_major_and_names_cells(tmp_path):
    variant = tmp_path / "ppm.yaml"
    variant.write_text("model:\n  context:\n    type: ppm\n")
    cells = expand(["model.srm.mode=bilinear,neighbor"], [str(variant)], [0, 1])
    assert [c.name for c in cells] == ["model.srm.mode=bilinear__ppm/seed0", "model.srm.mode=neighbor__ppm/seed0",
                                       "model.srm.mode=bilinear__ppm/seed1", "model.srm.mode=neighbor__ppm/seed1"]
    assert cells[1].overrides == ["model.srm.mode=neighbor", "model.context.type=ppm", "train.seed=0"]


def test_study_runs_a_tiny_grid_then_skips_finished_cells(tiny, tmp_path, capsys):
    config = tmp_path / "base.yaml"
    config.write_text("train:\n  max_iters: 2\n")
    calls = []

    def runner(argv):
        calls.append(argv[0])
        return main(argv)

    work = tmp_path / "study"
    cells = run_study(str(config), ["model.srm.mode=bilinear,dysample"], [], [0, 1], work, tiny_overrides(tiny),
                      runner=runner)
    assert calls == ["train", "eval"] * 4
    assert all((c / "eval.json").is_file() and (c / "eval.npz").is_file() for c in cells)
    assert (work / "model.srm.mode=dysample/seed1/checkpoints/iter_00000002.pth").is_file()
    calls.clear()
    run_study(str(config), ["model.srm.mode=bilinear,dysample"], [], [0, 1], work, tiny_overrides(tiny),
              runner=runner)
    assert calls == [] and capsys.readouterr().out.count("done already") == 4
    # the CLI: the finished grid is compared, compare.json / compare.md written
    code, out, err = run("study", config, *tiny_overrides(tiny), "--vary", "model.srm.mode=bilinear,dysample",
                         "--seeds", 0, 1, "--work-dir", work)
    assert code == 0, err
    result = json.loads((work / "compare.json").read_text())
    assert [g["label"] for g in result["groups"]] == ["model.srm.mode=bilinear", "model.srm.mode=dysample"]
    assert result["groups"][0]["seeds"] == [0, 1] and (work / "compare.md").is_file()
    assert [json.loads(line)["declared"] for line in (work / "looks.jsonl").read_text().splitlines()] == [False]
    # a plan is fixed in the study folder before its first run, and cannot change afterwards
    plan = tmp_path / "plan.yaml"
    plan.write_text("comparisons: [[model.srm.mode=dysample, model.srm.mode=bilinear]]\nseeds: [0, 1]\n")
    planned = tmp_path / "planned"
    code, out, err = run("study", config, *tiny_overrides(tiny), "--vary", "model.srm.mode=bilinear,dysample",
                         "--seeds", 0, 1, "--work-dir", planned, "--plan", plan, "--print-commands")
    assert code == 0, err
    assert "seeds: [0, 1]" in (planned / "plan.yaml").read_text()
    plan.write_text("comparisons: [[model.srm.mode=dysample, model.srm.mode=bilinear]]\nseeds: [0, 1, 2]\n")
    code, out, err = run("study", config, *tiny_overrides(tiny), "--vary", "model.srm.mode=bilinear,dysample",
                         "--seeds", 0, 1, "--work-dir", planned, "--plan", plan, "--print-commands")
    assert code == 2 and "plan is fixed before the first run" in err and "seeds" in err and out == ""


def test_a_stale_cell_is_refused_naming_the_key_or_moved_aside_and_run_again(tiny, tmp_path, capsys):
    """Editing a variant file after its cells ran used to report the old cells' results as the new variant's."""
    config = tmp_path / "base.yaml"
    config.write_text("train:\n  max_iters: 2\n")
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("model.srm.mode: bilinear\n")
    b.write_text("model.srm.mode: dysample\n")
    calls = []

    def runner(argv):
        calls.append((argv[0], argv[3] if argv[0] == "train" else argv[1]))
        return main(argv)

    work = tmp_path / "study"
    run_study(str(config), [], [str(a), str(b)], [0], work, tiny_overrides(tiny), runner=runner)
    old = (work / "b/seed0/eval.json").read_text()
    b.write_text("model.srm.mode: dysample\nmodel.srm.dysample_groups: 2\n")  # the variant changed
    calls.clear()
    code, out, err = run("study", config, *tiny_overrides(tiny), "--variants", a, b, "--seeds", 0, "--work-dir", work)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{work / 'b/seed0'}" in err and "model.srm.dysample_groups: 4 -> 2" in err and "--rerun-stale" in err
    assert (work / "b/seed0/eval.json").read_text() == old  # nothing moved or run
    run_study(str(config), [], [str(a), str(b)], [0], work, tiny_overrides(tiny), runner=runner, rerun_stale=True)
    assert [c[0] for c in calls] == ["train", "eval"] and str(work / "b/seed0") in calls[0][1]
    assert (work / "stale-1/b/seed0/eval.json").read_text() == old  # kept, out of the way of */seed* globs
    assert load_run(work / "b/seed0").config["model.srm.dysample_groups"] == 2
    assert "b/seed0: stale, moved to" in capsys.readouterr().out
    code, out, _ = run("study", "--help")
    assert code == 0 and "WORK_DIR/stale-N/CELL" in " ".join(out.split())  # the help names where they go


def test_print_commands_prints_one_line_per_cell_and_runs_nothing(tiny, tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text("train:\n  max_iters: 3\n")  # the overrides set 2: they win
    code, out, err = run("study", config, *tiny_overrides(tiny), "--vary", "model.srm.mode=bilinear,neighbor",
                         "--vary", "model.deep_supervision=true,false", "--seeds", 0, 1, 2, "--work-dir",
                         tmp_path / "w", "--print-commands")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 12 and not (tmp_path / "w").exists()
    assert all(line.startswith(f"scrnet train {config} --work-dir ") and " && scrnet eval " in line for line in lines)
    assert "model.srm.mode=neighbor model.deep_supervision=false train.seed=2" in lines[-1]
    assert lines[-1].endswith("checkpoints/iter_00000002.pth --json "
                              f"{tmp_path}/w/model.srm.mode=neighbor__model.deep_supervision=false/seed2/eval.json")


def test_study_bad_usage_is_one_line_before_anything_runs(tiny, tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text("train:\n  max_iters: 2\n")
    for extra, message in ((["--vary", "model.srm.mode=bilinear,wavy"], "model.srm.mode"),
                           (["--vary", "model.srm.mode"], "KEY=V1,V2"),
                           (["--variants", tmp_path / "missing.yaml"], "missing.yaml"),
                           ([], "nothing to vary")):
        code, out, err = run("study", config, *tiny_overrides(tiny), *extra, "--seeds", 0, "--work-dir",
                             tmp_path / "w")
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "w").exists()


def test_a_cell_folder_holding_a_users_files_is_refused_before_anything_runs(tiny, tmp_path):
    config = tmp_path / "base.yaml"
    config.write_text("train:\n  max_iters: 2\n")
    cell = tmp_path / "w" / "model.srm.mode=bilinear" / "seed0"
    cell.mkdir(parents=True)
    (cell / "notes.txt").write_text("mine")
    code, out, err = run("study", config, *tiny_overrides(tiny), "--vary", "model.srm.mode=bilinear,pixel",
                         "--seeds", 0, "--work-dir", tmp_path / "w")
    assert code != 0 and f"{cell} holds files but no run of scrnet" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in cell.iterdir()) == ["notes.txt"]
    assert not (tmp_path / "w" / "model.srm.mode=pixel").exists()  # nothing ran


def test_counts_files_of_format_1_still_read_and_compare_the_same(tmp_path):
    """Format 1 stored N x K x K confusion matrices; format 2 stores per-class counts. Rewriting every run's
    file in format 1 changes nothing in the comparison."""
    paths = study_runs(tmp_path, 0.70, 0.75)
    code, new, err = run("compare", *paths)
    assert code == 0, err
    for path in paths:
        counts = PerImageCounts.load(path.with_suffix(".npz"))
        k = counts.num_classes
        confusion = np.zeros((len(counts.images), k, k), np.int64)
        for i in range(len(counts.images)):  # a confusion matrix with these per-class counts
            confusion[i][np.diag_indices(k)] = counts.tp[i]
            for c in range(k):  # misses of class c predicted as c+1 (what study_runs wrote)
                confusion[i, c, (c + 1) % k] = counts.gt[i, c] - counts.tp[i, c]
        np.testing.assert_array_equal(confusion.sum(-2), counts.pred)
        np.savez_compressed(path.with_suffix(".npz"), images=np.array(counts.images), confusion=confusion,
                            biou_inter=counts.biou_inter, biou_union=counts.biou_union)
    with np.load(paths[0].with_suffix(".npz")) as z:
        assert "format" not in z.files and "confusion" in z.files
    code, old, err = run("compare", *paths)
    assert code == 0 and old == new, err


def test_counts_files_of_a_newer_format_are_refused_by_name(tmp_path):
    paths = study_runs(tmp_path, 0.70, 0.75)
    npz = paths[0].with_suffix(".npz")
    with np.load(npz) as z:
        arrays = dict(z)
    arrays["format"] = np.array(99)
    np.savez_compressed(npz, **arrays)
    code, out, err = run("compare", *paths)
    assert code != 0 and str(npz) in err and "format 99" in err


def test_study_is_a_library_call(tmp_path):
    """What the CLI does, from Python: with print_commands nothing runs and no compare is made."""
    from scrnet.experiments.study import study

    config = tmp_path / "c.yaml"
    config.write_text("model:\n  name: scrnet_r18\n  num_classes: 9\n")
    done = study(str(config), ["model.srm.mode=bilinear,neighbor"], [], [0, 1], tmp_path / "w", print_commands=True)
    assert sorted(c.relative_to(tmp_path / "w").as_posix() for c in done.cells) == [
        "model.srm.mode=bilinear/seed0", "model.srm.mode=bilinear/seed1", "model.srm.mode=neighbor/seed0",
        "model.srm.mode=neighbor/seed1"]
    assert done.compare is None and done.files == [] and not (tmp_path / "w" / "compare.json").exists()


def test_a_study_of_frozen_backbones_is_labelled_a_decoder_study(tmp_path):
    """model.frozen_stages in every run: the table says it compares decoders on frozen features (text, Markdown)."""
    from scrnet.experiments.compare import format_markdown, format_text

    end_to_end = [load_run(p) for p in study_runs(tmp_path / "e2e", 0.74, 0.76)]
    assert compare(end_to_end)["protocol"] == "end-to-end"
    assert "decoder study" not in format_text(compare(end_to_end))
    rng = np.random.default_rng(0)
    frozen = [load_run(write_run(tmp_path / "frozen" / name / f"seed{s}.json", image_counts(rng, acc), s,
                                 [*over, "model.frozen_stages=2"]))
              for name, acc, over in (("base", 0.74, ["model.srm.mode=bilinear"]), ("other", 0.76, []))
              for s in FIVE]
    result = compare(frozen)
    assert result["protocol"] == "decoder study (model.frozen_stages=2)"
    assert "decoder study (model.frozen_stages=2): mean ± sd" in format_text(result)
    assert "decoder study (model.frozen_stages=2): mean ± sd" in format_markdown(result)
    assert compare(end_to_end[:5] + frozen[5:])["protocol"] == "mixed frozen stages"
