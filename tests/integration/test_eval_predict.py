"""scrnet eval and scrnet predict as a user runs them, and agreement with the official Cityscapes evaluator."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import run_like_subprocess
from data_fixtures import make_cityscapes, make_folder
from model_fixtures import varied_r18

import scrnet
from scrnet.data.cityscapes import CLASSES, LABEL_TO_TRAIN, PALETTE


def cli(*args, env=None):
    """``scrnet ARGS`` as a user runs it: in this process (``cli_helpers``), or in a subprocess when the test sets
    the environment."""
    if env is None:
        return run_like_subprocess(*args)
    return subprocess.run([sys.executable, "-m", "scrnet", *args], capture_output=True, text=True, timeout=600,
                          env=env)


@pytest.fixture(scope="module")
def cityscapes(tmp_path_factory):
    root = tmp_path_factory.mktemp("cityscapes")
    make_cityscapes(root, "val", n=3, size=(64, 128), label_ids=(7, 8, 11, 21, 23, 26, 24, 0, 4))
    for gt in (root / "gtFine" / "val").rglob("*_gtFine_labelIds.png"):  # the official evaluator also reads these
        cv2.imwrite(str(gt).replace("_labelIds", "_instanceIds"), cv2.imread(str(gt), cv2.IMREAD_UNCHANGED))
    return root


@pytest.fixture(scope="module")
def checkpoint(cityscapes, tmp_path_factory):
    model = varied_r18(num_classes=19, channels=32, seed=3)
    from scrnet.config import Config, DataConfig

    config = Config(model=model.cfg, data=DataConfig(type="cityscapes", root=str(cityscapes)))
    return scrnet.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model.pth", CLASSES, PALETTE, config)


def test_eval_matches_the_official_cityscapes_evaluator(cityscapes, checkpoint, tmp_path):
    pytest.importorskip("cityscapesscripts")  # in the eval extra
    ours = tmp_path / "ours.json"
    result = cli("eval", str(checkpoint), "--json", str(ours))
    assert result.returncode == 0, result.stderr
    summary = json.loads(ours.read_text())
    predictions = tmp_path / "results"
    result = cli("predict", str(checkpoint), str(cityscapes / "leftImg8bit" / "val"), "--format", "labelid",
                 "--out", str(predictions))
    assert result.returncode == 0, result.stderr
    export = tmp_path / "export"
    export.mkdir()
    code = ("import numpy as np; np.in1d = np.isin; import sys; sys.argv = ['eval']; "
            "from cityscapesscripts.evaluation import evalPixelLevelSemanticLabeling as e; e.main()")
    env = {"CITYSCAPES_DATASET": str(cityscapes), "CITYSCAPES_RESULTS": str(predictions),
           "CITYSCAPES_EXPORT_DIR": str(export), "PATH": "/usr/bin:/bin", "MPLBACKEND": "Agg"}
    official = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, env=env)
    assert official.returncode == 0, official.stdout[-2000:] + official.stderr[-2000:]
    theirs = json.loads((export / "resultPixelLevelSemanticLabeling.json").read_text())
    assert summary["miou"] == pytest.approx(theirs["averageScoreClasses"], abs=1e-6)
    for name in CLASSES:
        ours_iou, their_iou = summary["iou"][name], theirs["classScores"][name]
        assert (ours_iou is None and np.isnan(their_iou)) or ours_iou == pytest.approx(their_iou, abs=1e-6), name
    assert sum(v is not None for v in summary["iou"].values()) >= 5  # the comparison covers several classes


def test_eval_json_and_table(cityscapes, checkpoint, tmp_path):
    out = tmp_path / "r.json"
    result = cli("eval", str(checkpoint), "--mode", "slide", "eval.crop_size=[48,64]", "eval.stride=[32,48]",
                 "--json", str(out))
    assert result.returncode == 0, result.stderr
    summary = json.loads(out.read_text())
    assert {"miou", "aacc", "iou", "num_images", "biou", "mbiou"} <= set(summary)
    assert summary["num_images"] == 3 and set(summary["iou"]) == set(CLASSES) == set(summary["biou"])
    assert "mode slide" in result.stdout and "road" in result.stdout and "mean" in result.stdout
    # the published boundary metrics, with their parameters, and the table shows the JSON's figures
    assert summary["boundary_iou"]["dilation_ratio"] == 0.02
    assert set(summary["boundary_iou"]["per_class"]) == set(CLASSES)
    assert list(summary["boundary_f"]) == ["3", "5", "9", "12"]
    assert [(b["from"], b["to"]) for b in summary["distance_bands"]] == [(0, 2), (2, 4), (4, 8), (8, 16), (16, None)]
    mean_row = next(line for line in result.stdout.splitlines() if line.startswith("mean"))
    assert f"{100 * summary['boundary_f']['3']['mean']:.2f}" in mean_row
    assert f"{100 * summary['boundary_iou']['mean']:.2f}" in mean_row
    assert "band = 0.02 x image diagonal" in result.stdout
    environment = summary["environment"]  # what it ran on, beside what it measured
    assert environment["device"] == "cpu" and environment["torch"] == torch.__version__
    assert environment["threads"] >= 1
    # the per-image counts beside the JSON rebuild every figure compare puts an interval on
    from scrnet.evaluation.counts import PerImageCounts, counts_path
    from scrnet.experiments.compare import RunStats

    counts = PerImageCounts.load(counts_path(out))
    assert counts.boundary_inter.shape == counts.boundary_union.shape == (3, len(CLASSES))
    stats = RunStats.of_counts(counts)
    for metric, expected in (("miou", summary["miou"]), ("mbiou", summary["mbiou"]),
                             ("boundary_iou", summary["boundary_iou"]["mean"])):
        scored, without_each = stats.scored_and_loo(metric)
        assert scored == pytest.approx(expected, abs=1e-12) and without_each.shape == (3,), metric
    tta = cli("eval", str(checkpoint), "--tta", "eval.scales=[0.75,1.0]")
    assert tta.returncode == 0 and "multi-scale + flip" in tta.stdout


def test_checkpoint_that_does_not_fit_the_data_set(checkpoint, tmp_path):
    make_folder(tmp_path / "mine", split="val", classes=("a", "b", "c"))
    result = cli("eval", str(checkpoint), "--data.type", "folder", "--data.root", str(tmp_path / "mine"))
    assert result.returncode == 2
    assert "predicts 19 classes but the folder data set at" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    missing = cli("eval", str(tmp_path / "nothing.pth"))
    assert missing.returncode == 2 and "checkpoint not found" in missing.stderr


def test_predict_folders_with_good_and_bad_files(checkpoint, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (45, 70, 3), dtype=np.uint8)
    cv2.imwrite(str(inputs / "a.png"), rgb)
    cv2.imwrite(str(inputs / "sub" / "b.jpg"), rgb[:30, :50])
    cv2.imwrite(str(inputs / "gray.png"), rgb[..., 0])
    (inputs / "broken.png").write_bytes(b"not an image")
    (inputs / "notes.txt").write_text("ignored: not an image suffix")
    out = tmp_path / "out"
    result = cli("predict", str(checkpoint), str(inputs), "--format", "color", "--out", str(out), "--show-offsets")
    assert result.returncode == 1
    assert "broken.png" in result.stderr and "1 input(s) failed" in result.stdout
    assert cv2.imread(str(out / "a.png")).shape == (45, 70, 3)
    assert cv2.imread(str(out / "sub" / "b.png")).shape == (30, 50, 3)
    assert cv2.imread(str(out / "gray.png")).shape == (45, 70, 3)
    assert cv2.imread(str(out / "sub" / "b_offsets.png")).shape == (30, 50, 3)
    colours = {tuple(c) for c in cv2.cvtColor(cv2.imread(str(out / "a.png")), cv2.COLOR_BGR2RGB).reshape(-1, 3)}
    assert colours <= set(PALETTE)


def test_predict_replaces_only_what_it_wrote(checkpoint, tmp_path):
    """Regression (issue 25): predicting a folder into itself overwrote the inputs with their predictions."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    rgb = np.random.default_rng(0).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    for name in ("a", "b"):
        cv2.imwrite(str(inputs / f"{name}.png"), rgb)
    before = {p.name: p.read_bytes() for p in inputs.iterdir()}
    result = cli("predict", str(checkpoint), str(inputs), "--out", str(inputs))
    assert result.returncode == 2 and "a.png exists and was not written by scrnet (and 1 more)" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in inputs.iterdir()} == before  # nothing written, nothing lost
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for _ in range(2):  # the second run replaces the first run's files
        result = cli("predict", str(checkpoint), str(inputs), "--out", str(out))
        assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == [".scrnet-written.json", "a.png", "b.png", "notes.txt"]
    (out / "a.png").write_text("edited by the user since")  # scrnet wrote it, but it is no longer as scrnet left it
    cv2.imwrite(str(inputs / "c.png"), rgb)
    (out / "c.png").write_text("mine too")
    result = cli("predict", str(checkpoint), str(inputs), "--out", str(out))
    assert result.returncode == 2 and "a.png exists and was not written by scrnet (and 1 more)" in result.stderr
    assert (out / "a.png").read_text() == "edited by the user since" and (out / "c.png").read_text() == "mine too"
    assert (out / "notes.txt").read_text() == "mine"
    cv2.imwrite(str(inputs / "c.jpg"), rgb)
    result = cli("predict", str(checkpoint), str(inputs / "c.png"), str(inputs / "c.jpg"),
                 "--out", str(tmp_path / "o3"))
    assert result.returncode == 2 and "would both be written to" in result.stderr
    assert not (tmp_path / "o3").exists()


@pytest.mark.parametrize("fmt", ["trainid", "labelid", "overlay"])
def test_predict_formats(checkpoint, tmp_path, fmt):
    src = tmp_path / "x_leftImg8bit.png"
    cv2.imwrite(str(src), np.random.default_rng(1).integers(0, 256, (40, 60, 3), dtype=np.uint8))
    result = cli("predict", str(checkpoint), str(src), "--format", fmt, "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    out = cv2.imread(str(tmp_path / "o" / "x_leftImg8bit.png"), cv2.IMREAD_UNCHANGED)
    assert out.shape[:2] == (40, 60)
    if fmt == "trainid":
        assert out.max() < 19
    if fmt == "labelid":
        assert set(np.unique(out)) <= {k for k, v in LABEL_TO_TRAIN.items() if v != 255}


def test_labelid_needs_a_cityscapes_model(tmp_path):
    model = scrnet.create_model("fpn_r18", num_classes=3, channels=16)
    ckpt = scrnet.save_checkpoint(model, tmp_path / "m.pth", ["a", "b", "c"], [(1, 2, 3)] * 3)
    src = tmp_path / "x.png"
    cv2.imwrite(str(src), np.zeros((20, 20, 3), np.uint8))
    result = cli("predict", str(ckpt), str(src), "--format", "labelid", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "Cityscapes label ids" in result.stderr
    result = cli("predict", str(ckpt), str(src), "--show-offsets", "--out", str(tmp_path / "o"))
    assert result.returncode == 2 and "no SRM offsets" in result.stderr
    result = cli("predict", str(ckpt), str(tmp_path / "nothing*.png"))
    assert result.returncode == 2 and "no image or video matches" in result.stderr


def test_video_round_trip(checkpoint, tmp_path):
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 8, (64, 48))
    for i in range(6):
        frame = np.zeros((48, 64, 3), np.uint8)
        frame[:, : 10 * (i + 1)] = 200
        writer.write(frame)
    writer.release()
    result = cli("predict", str(checkpoint), str(clip), "--out", str(tmp_path / "o"))
    assert result.returncode == 0, result.stderr
    capture = cv2.VideoCapture(str(tmp_path / "o" / "clip.mp4"))
    frames = 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        assert frame.shape == (48, 64, 3)
        frames += 1
    assert frames == 6 and capture.get(cv2.CAP_PROP_FPS) == pytest.approx(8)
    (tmp_path / "bad.mp4").write_bytes(b"\x00" * 100)
    result = cli("predict", str(checkpoint), str(tmp_path / "bad.mp4"), "--out", str(tmp_path / "o2"))
    assert result.returncode == 1 and "bad.mp4" in result.stderr


def test_a_bug_inside_evaluation_is_reported_as_a_bug_not_as_bad_usage(checkpoint, monkeypatch, capsys):
    """A numpy broadcast error inside evaluation used to print 'error: ...' with exit 2, as if the input were
    wrong, and SCRNET_DEBUG=1 showed no traceback."""
    from scrnet.cli import main
    from scrnet.evaluation import metrics

    def broken(self, pred, target):
        raise ValueError("operands could not be broadcast together with shapes (3,) (4,)")

    monkeypatch.setattr(metrics.ConfusionMatrix, "update", broken)
    monkeypatch.delenv("SCRNET_DEBUG", raising=False)
    assert main(["eval", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "internal error (a bug in scrnet, not a problem with your input): ValueError: operands" in err
    assert "Traceback" not in err and "SCRNET_DEBUG=1" in err
    monkeypatch.setenv("SCRNET_DEBUG", "1")
    assert main(["eval", str(checkpoint)]) == 1
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and "def broken" not in err and "in broken" in err
    # bad usage stays one line with exit 2, and SCRNET_DEBUG=1 shows where it was raised too
    assert main(["eval", str(checkpoint) + ".missing"]) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and "scrnet eval: error:" in err
    monkeypatch.delenv("SCRNET_DEBUG")
    assert main(["eval", str(checkpoint) + ".missing"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
