import hashlib
import json

import numpy as np
from cli_helpers import run_like_subprocess
from data_fixtures import make_cityscapes, make_folder, write_mask

from scrnet.data import SegmentationDataset, open_source, read_mask
from scrnet.data.check import check_dataset
from scrnet.data.synthetic import CLASSES, POLE, generate_synthetic, render_scene


def digest(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synthetic_is_deterministic_for_a_seed(tmp_path):
    a = generate_synthetic(tmp_path / "a", num_train=3, num_val=2, size=(64, 128), seed=5)
    b = generate_synthetic(tmp_path / "b", num_train=3, num_val=2, size=(64, 128), seed=5)
    c = generate_synthetic(tmp_path / "c", num_train=3, num_val=2, size=(64, 128), seed=6)
    assert digest(a) == digest(b) and digest(a) != digest(c)
    assert len(digest(a)) == 1 + 2 * 5


def test_synthetic_is_a_valid_folder_data_set_with_every_class(tmp_path):
    out = generate_synthetic(tmp_path, num_train=12, num_val=4, size=(128, 256), seed=0)
    report = check_dataset("folder", str(out), "train")
    assert report.problems == [] and report.num_pairs == 12
    assert list(report.class_pixels) == [n for n, _ in CLASSES]
    assert all(v > 0 for v in report.class_pixels.values())
    assert len(SegmentationDataset(open_source("folder", out, "val"))) == 4


def test_synthetic_scenes_have_thin_structures():
    widths = []
    for i in range(10):
        _, mask = render_scene(256, 512, np.random.default_rng([0, 0, i]))
        for row in np.where((mask == POLE).any(axis=1))[0][-3:]:  # bottom rows of the poles: the pole itself
            widths.append(int((mask[row] == POLE).sum()))
    assert widths and min(widths) >= 2 and np.median(widths) <= 4


def test_check_counts_pixels_and_lists_every_problem(tmp_path):
    make_cityscapes(tmp_path, "val", n=4, size=(16, 32), label_ids=(7, 26, 0))
    source = open_source("cityscapes", tmp_path, "val")
    (image0, mask0), (_, mask1), (_, mask2) = source.pairs[:3]
    image0.write_bytes(b"garbage")
    write_mask(mask1, np.zeros((10, 10), np.uint8))
    write_mask(mask2, np.full((16, 32), 40, np.uint8))
    orphan = tmp_path / "gtFine" / "val" / "lindau" / "lindau_000099_000019_gtFine_labelIds.png"
    write_mask(orphan, np.zeros((16, 32), np.uint8))
    report = check_dataset("cityscapes", str(tmp_path), "val")
    assert report.num_pairs == 4 and len(report.problems) == 4
    assert report.problems[0].startswith("1 masks without images") and orphan.name in report.problems[0]
    assert any(str(image0) in p and "unreadable" in p for p in report.problems)
    assert any(str(mask1) in p and "10x10" in p and "32x16" in p for p in report.problems)
    assert any(str(mask2) in p and ": 40" in p for p in report.problems)
    good = read_mask(source.pairs[3][1])
    assert report.class_pixels["road"] == int((good == 7).sum())
    assert report.class_pixels["car"] == int((good == 26).sum())
    assert report.ignored_pixels == int((good == 0).sum())
    assert report.image_sizes == {"32x16": 3}


def run_cli(*args):
    return run_like_subprocess(*args)


def test_data_check_cli_json_and_exit_codes(tmp_path):
    make_folder(tmp_path / "ok", n=3)
    out = tmp_path / "check.json"
    result = run_cli("data", "check", "--data.type", "folder", "--data.root", str(tmp_path / "ok"), "--json", str(out))
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert {"num_pairs", "class_pixels", "ignored_pixels", "problems"} <= set(report)
    assert report["num_pairs"] == 3 and report["problems"] == [] and set(report["class_pixels"]) == {"a", "b", "c"}
    assert sum(report["class_pixels"].values()) + report["ignored_pixels"] == 3 * 32 * 48
    result = run_cli("data", "check", "--data.type", "folder", "--data.root", str(tmp_path / "missing"))
    assert result.returncode == 1 and "folder not found" in result.stdout
    result = run_cli("data", "check", "--data.type", "kitti", "--data.root", str(tmp_path))
    assert result.returncode == 2 and "invalid choice: 'kitti'" in result.stderr


def test_data_synth_cli(tmp_path):
    result = run_cli("data", "synth", str(tmp_path / "s"), "--num-train", "2", "--num-val", "1", "--size", "64", "96")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "s" / "train" / "images").iterdir())) == 2
    assert read_mask(tmp_path / "s" / "val" / "masks" / "00000.png").shape == (64, 96)
