"""Weights as the field shares them: `scrnet publish`, `from_pretrained` (folder and hf:// ids from an offline
cache laid out as huggingface_hub lays it out), the model card read by huggingface_hub itself, the CLI commands
taking a folder, the Segmenter, and every bad input as one line."""

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from cli_helpers import run, run_like_subprocess
from data_fixtures import make_folder
from model_fixtures import varied_r18

import scrnet
from scrnet.checkpoint_io import CheckpointError, sha256_of
from scrnet.config import Config, DataConfig, EvalConfig
from scrnet.data.transforms import EvalTransformConfig
from scrnet.hub.publish import publish, push

CLASSES = ["a", "b", "c"]
PALETTE = [(10, 20, 30), (200, 0, 0), (0, 200, 0)]


def cli(*args, env=None, cwd=None):
    """``scrnet ARGS``: in this process (``cli_helpers``), or in a subprocess when the test sets the environment or
    the working folder."""
    if env is None and cwd is None:
        return run_like_subprocess(*args)
    return subprocess.run([sys.executable, "-m", "scrnet", *args], capture_output=True, text=True, timeout=600,
                          env=env, cwd=cwd)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A data set, a checkpoint (with deep-supervision heads) and its eval JSON."""
    base = tmp_path_factory.mktemp("publish")
    root = make_folder(base / "data", "val", n=2, size=(40, 56))
    model = varied_r18(num_classes=3, channels=16, seed=0)
    config = Config(model=model.cfg, data=DataConfig(type="folder", root=str(root),
                                                     eval=EvalTransformConfig(scale=[112, 80])),
                    eval=EvalConfig(mode="whole"))
    checkpoint = scrnet.save_checkpoint(model, base / "model.pth", CLASSES, PALETTE, config)
    eval_json = base / "eval.json"
    code, _, err = run("eval", checkpoint, "--json", eval_json)
    assert code == 0, err
    return base, root, checkpoint, eval_json


@pytest.fixture(scope="module")
def folder(setup):
    base, _, checkpoint, eval_json = setup
    out = base / "published"
    result = cli("publish", str(checkpoint), str(out), "--eval", str(eval_json), "--name", "scrnet-r18-test")
    assert result.returncode == 0, result.stderr  # the one run of the command as a user runs it
    assert f"sha256 {sha256_of(out / 'model.safetensors')}" in result.stdout
    return out


def test_the_folder_holds_eval_weights_config_and_card(setup, folder):
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    from safetensors.torch import load_file

    keys = set(load_file(str(folder / "model.safetensors")))
    assert keys and not any(k.startswith("decoder.aux_heads.") for k in keys)
    meta = json.loads((folder / "config.json").read_text())
    assert meta["weights"]["sha256"] == sha256_of(folder / "model.safetensors")
    assert meta["class_names"] == CLASSES and meta["palette"] == [list(c) for c in PALETTE]
    assert meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["eval_protocol"] == {"mode": "whole", "resize": [112, 80], "crop_size": None, "stride": None,
                                     "tta": False, "scales": None, "flip": None}
    assert meta["compute"]["input"] == [1, 3, 80, 112] and meta["compute"]["gmacs"] > 0
    assert meta["scrnet_version"] == scrnet.__version__ and meta["format_version"] == 1


def test_from_pretrained_gives_the_checkpoints_logits_and_config(setup, folder):
    _, _, checkpoint, _ = setup
    a, b = scrnet.load_checkpoint(checkpoint), scrnet.from_pretrained(folder)
    x = torch.randn(2, 3, 45, 61)
    with torch.no_grad():
        assert torch.equal(a.model(x), b.model(x))
    assert b.config.data.root == "" and b.config.data.type == a.config.data.type  # no local path is published
    assert replace(b.config, data=a.config.data) == a.config
    assert b.class_names == a.class_names and b.palette == a.palette
    assert b.normalization.mean == a.normalization.mean and b.normalization.std == a.normalization.std


def test_the_cli_commands_take_the_folder(setup, folder, tmp_path):
    base, root, checkpoint, eval_json = setup
    out = tmp_path / "e.json"
    code, _, err = run("eval", folder)
    assert code == 2 and "names no data root" in err and "--data.root" in err
    assert run("eval", folder, "--data.root", root, "--json", out)[0] == 0
    assert json.loads(out.read_text())["miou"] == json.loads(eval_json.read_text())["miou"]
    image = sorted((root / "val" / "images").iterdir())[0]
    for source, dst in ((checkpoint, tmp_path / "p1"), (folder, tmp_path / "p2")):
        assert run("predict", source, image, "--format", "trainid", "--out", dst)[0] == 0
    assert np.array_equal(cv2.imread(str(tmp_path / "p1" / "img0.png"), cv2.IMREAD_UNCHANGED),
                          cv2.imread(str(tmp_path / "p2" / "img0.png"), cv2.IMREAD_UNCHANGED))
    code, _, err = run("export", folder, "--onnx", tmp_path / "m.onnx", "--size", "64", "64")
    assert code == 0, err
    code, out, err = run("benchmark", "fpn_r18", folder, "--size", "64", "64", "--rounds", "1", "--warmup", "0")
    assert code == 0 and str(folder) in out, err


def test_the_card_parses_with_huggingface_hub_and_holds_the_figures(setup, folder):
    hub = pytest.importorskip("huggingface_hub")
    card = hub.ModelCard.load(folder / "README.md")
    data = card.data
    assert data.library_name == "scrnet" and data.pipeline_tag == "image-segmentation"
    assert data.license == "apache-2.0" and "semantic-segmentation" in data.tags
    metrics = json.loads(setup[3].read_text())
    results = {r.metric_type: r for r in data.eval_results}
    assert results["mean_iou"].metric_value == round(100 * metrics["miou"], 2)
    # the field's Boundary IoU under its name; our fixed-band BIoU* under its own
    assert results["boundary_iou"].metric_value == round(100 * metrics["boundary_iou"]["mean"], 2)
    assert results["biou_band"].metric_value == round(100 * metrics["mbiou"], 2)
    assert results["mean_iou"].dataset_split == "val" and results["mean_iou"].task_type == "image-segmentation"
    body = card.text
    assert "reconstruction" in body and "10.1109/TMM.2025.3543037" in body and "scrnet.Segmenter" in body
    assert sha256_of(folder / "model.safetensors") in body


def test_the_card_claims_no_training_that_the_checkpoint_does_not_record(setup, folder, tmp_path):
    """The fixture's checkpoint was never trained (save_checkpoint of a model built in Python): its card used to
    say "Cityscapes train, 80000 iterations, sgd", list a training data set, link a PyPI page that does not
    exist and publish the author's data.root."""
    base, root, checkpoint, _ = setup
    card = (folder / "README.md").read_text()
    header = card.split("---")[1]
    assert "datasets:" not in header and "## Training\n\nUnknown" in card
    assert "iterations" not in card.split("## Training")[1].split("## Evaluation")[0].replace("iteration)", "")
    assert "pypi.org" not in card
    for published in folder.iterdir():  # no local path in any published file
        if published.suffix != ".safetensors":
            text = published.read_text()
            assert str(root) not in text and str(base) not in text, published.name
    meta = json.loads((folder / "config.json").read_text())
    assert meta["provenance"] == {"trained_iterations": None} and meta["config"]["data"]["root"] == ""
    # a training checkpoint records its iterations: then the recipe is stated, as recorded
    state = torch.load(checkpoint, weights_only=True)
    state["iteration"] = 40
    torch.save(state, tmp_path / "trained.pth")
    publish(tmp_path / "trained.pth", tmp_path / "trained")
    card = (tmp_path / "trained" / "README.md").read_text()
    assert "## Training recipe" in card and "40 of" in card
    assert scrnet.from_pretrained(tmp_path / "trained").trained_iterations == 40


def populate_hub_cache(cache: Path, repo: str, folder: Path, commit: str, branch: str = "main") -> None:
    """The layout huggingface_hub writes: blobs by hash, snapshots/<commit>/<file> -> ../../blobs/<hash>,
    refs/<branch> holding the commit."""
    base = cache / f"models--{repo.replace('/', '--')}"
    (base / "blobs").mkdir(parents=True, exist_ok=True)
    (base / "snapshots" / commit).mkdir(parents=True, exist_ok=True)
    (base / "refs").mkdir(exist_ok=True)
    for path in folder.iterdir():
        digest = sha256_of(path)
        shutil.copy(path, base / "blobs" / digest)
        os.symlink(f"../../blobs/{digest}", base / "snapshots" / commit / path.name)
    (base / "refs" / branch).write_text(commit)


def test_an_hf_id_resolves_from_an_offline_cache(setup, folder, tmp_path):
    pytest.importorskip("huggingface_hub")
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    populate_hub_cache(cache, "my-org/scrnet-r18-test", folder, commit)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(tmp_path / "home")}
    # one fresh process (huggingface_hub reads HF_HUB_OFFLINE and the cache location when it is imported)
    script = f"""
import contextlib, io, sys, torch, scrnet
from scrnet.cli import main
torch.manual_seed(0)
x = torch.randn(1, 3, 40, 56)
b = scrnet.load_checkpoint({str(setup[2])!r})
for source in ("hf://my-org/scrnet-r18-test", "hf://my-org/scrnet-r18-test@{commit}"):
    a = scrnet.from_pretrained(source)
    print("same logits", bool(torch.equal(a.model(x), b.model(x))), a.path)
print("eval", main(["eval", "hf://my-org/scrnet-r18-test", "--data.root", {str(setup[1])!r}]))
err = io.StringIO()
with contextlib.redirect_stderr(err):
    print("missing", main(["eval", "hf://my-org/not-cached"]))
print("stderr", repr(err.getvalue()))
"""
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    same = [line for line in lines if line.startswith("same logits")]
    assert len(same) == 2 and all(line.startswith("same logits True") and commit in line for line in same)
    assert "eval 0" in lines and "missing 2" in lines
    err = next(line for line in lines if line.startswith("stderr"))
    assert "hf://my-org/not-cached: cannot get config.json" in err and "HF_HUB_OFFLINE" in err
    assert err.count("\\n") == 1  # one line


def test_segmenter_takes_paths_pil_and_arrays_and_applies_the_protocol(setup, folder, tmp_path):
    from PIL import Image

    _, root, checkpoint, _ = setup
    path = sorted((root / "val" / "images").iterdir())[0]
    seg = scrnet.Segmenter(folder, device="cpu")
    rgb = scrnet.data.read_image(path)
    by_path = seg(path, probabilities=True, overlay=True, offsets=True)
    assert np.array_equal(by_path.labels, seg(Image.open(path)).labels)
    assert np.array_equal(by_path.labels, seg(rgb).labels)
    assert by_path.labels.shape == rgb.shape[:2] and by_path.labels.dtype == np.uint8
    assert np.allclose(by_path.probabilities.sum(0), 1, atol=1e-5)
    assert np.array_equal(by_path.probabilities.argmax(0), by_path.labels)
    assert by_path.overlay.shape == rgb.shape and by_path.offsets.shape == (2, *rgb.shape[:2])
    out = tmp_path / "p"  # the twin of scrnet predict: the same labels
    assert run("predict", checkpoint, path, "--format", "trainid", "--out", out)[0] == 0
    assert np.array_equal(cv2.imread(str(out / "img0.png"), cv2.IMREAD_UNCHANGED), by_path.labels)
    with pytest.raises(ValueError, match="expected a uint8 image"):
        seg(rgb.astype(np.float32) / 255)


def test_publish_refuses_a_non_empty_folder_unless_forced_and_writes_nothing_half_way(setup, tmp_path):
    _, _, checkpoint, _ = setup
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    code, _, err = run("publish", checkpoint, out)
    assert code == 2 and f"{out} exists and is not empty" in err
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    bad_eval = tmp_path / "bad.json"
    bad_eval.write_text(json.dumps({"miou": 0.5, "iou": {"x": 0.5}}))
    code, _, err = run("publish", checkpoint, tmp_path / "new", "--eval", bad_eval)
    assert code == 2 and "scores classes ['x']" in err
    assert not (tmp_path / "new").exists() and not list(tmp_path.glob(".new.*"))
    # --force replaces only a model published there: a user's folder is refused and every file stays
    (out / ".git").mkdir()
    (out / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (out / "thesis.tex").write_text("years of work")
    code, _, err = run("publish", checkpoint, out, "--force")
    assert code == 2 and "holds files scrnet publish does not write (.git, keep.txt, thesis.tex)" in err, err
    assert sorted(p.name for p in out.iterdir()) == [".git", "keep.txt", "thesis.tex"]
    assert (out / "thesis.tex").read_text() == "years of work" and (out / ".git" / "HEAD").is_file()
    assert not list(tmp_path.glob(".out.*"))
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "config.json").write_text('{"format": "something-else"}')
    code, _, err = run("publish", checkpoint, fake, "--force")
    assert code == 2 and "not that of a published SCRNet model" in err and (fake / "config.json").is_file()
    # a published folder is replaced, and gets ordinary permissions (not mkdtemp's 0700)
    model = tmp_path / "model"
    assert run("publish", checkpoint, model)[0] == 0
    assert run("publish", checkpoint, model, "--force")[0] == 0
    assert sorted(p.name for p in model.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    (tmp_path / "plain").mkdir()
    assert model.stat().st_mode & 0o777 == (tmp_path / "plain").stat().st_mode & 0o777


def broken_copy(folder: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    return copy


@pytest.mark.parametrize("damage,message", [
    ("missing", "model.safetensors missing"),
    ("unknown_key", "has keys this scrnet does not know: ['teacher']"),
    ("newer", "folder format version 99, newer than this scrnet's 1 (unknown keys: ['teacher'])"),
    ("config_key", "model.lora: Key 'lora' not in 'ModelConfig'"),
    ("shapes", "decoder.classifier.weight has shape (5, 16, 1, 1) in the file and (3, 16, 1, 1) in the model"),
    ("sha", "differs from"),
])
def test_a_bad_folder_is_one_line_naming_the_file_or_key(folder, tmp_path, damage, message):
    copy = broken_copy(folder, tmp_path)
    meta = json.loads((copy / "config.json").read_text())
    if damage == "missing":
        (copy / "model.safetensors").unlink()
    elif damage in ("unknown_key", "newer"):
        meta["teacher"] = {}
        meta["format_version"] = 99 if damage == "newer" else 1
    elif damage == "config_key":
        meta["config"]["model"]["lora"] = 4
    elif damage == "shapes":  # weights of a 5-class model under this 3-class config
        from safetensors.torch import save_file

        other = scrnet.create_model("scrnet_r18", num_classes=5, channels=16, deep_supervision=False)
        save_file({k: v.contiguous() for k, v in other.state_dict().items()}, str(copy / "model.safetensors"))
        meta["weights"]["sha256"] = sha256_of(copy / "model.safetensors")
    elif damage == "sha":
        meta["weights"]["sha256"] = "0" * 64
    (copy / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError) as exc:
        scrnet.from_pretrained(copy)
    assert message in str(exc.value) and "\n" not in str(exc.value)
    code, _, err = run("predict", copy, tmp_path / "x.png")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_push_dry_run_and_upload_through_the_hub_client(folder, setup, tmp_path):
    _, _, checkpoint, _ = setup
    code, out, err = run("publish", checkpoint, tmp_path / "p", "--push", "my-org/scrnet-r18", "--dry-run")
    assert code == 0, err
    assert "would upload README.md, config.json, model.safetensors to https://huggingface.co/my-org/scrnet-r18" \
        in out
    assert "# scrnet-r18\n" in (tmp_path / "p" / "README.md").read_text()  # the repo name names the model
    code, _, err = run("publish", checkpoint, tmp_path / "q", "--push", "no-org")
    assert code == 2 and "--push must be ORG/NAME" in err
    assert not (tmp_path / "q").exists()

    calls = []

    class FakeApi:  # records what huggingface_hub's HfApi would be asked (no network here)
        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs["repo_id"], kwargs))
            return type("Commit", (), {"oid": "abc123"})()

    plan = push(folder, "my-org/scrnet-r18", revision="v1", api=FakeApi())
    assert plan["commit"] == "abc123" and [c[0] for c in calls] == ["create_repo", "upload_folder"]
    assert calls[1][2]["folder_path"] == str(folder) and calls[1][2]["revision"] == "v1"

    class Offline(FakeApi):  # huggingface_hub's HTTP errors and the network's are OSErrors
        def upload_folder(self, **kwargs):
            raise OSError("503 Server Error: Service Unavailable for url: https://huggingface.co/api/...")

    from scrnet.cli import exit_status
    from scrnet.hub.publish import PushFailed

    with pytest.raises(PushFailed) as err:
        push(folder, "my-org/scrnet-r18", api=Offline())
    message = str(err.value)
    assert "my-org/scrnet-r18" in message and "503 Server Error" in message and "\n" not in message
    assert exit_status(err.value) == 1 and (folder / "model.safetensors").is_file()  # a failed run; nothing lost


def test_publish_in_python_equals_the_cli(setup, tmp_path):
    _, _, checkpoint, eval_json = setup
    result = publish(checkpoint, tmp_path / "py", eval_json)
    assert result.sha256 == sha256_of(tmp_path / "py" / "model.safetensors")
    assert result.num_params == scrnet.load_checkpoint(checkpoint).model.num_params()


@pytest.mark.parametrize("source", ["hf://../x", "hf://org/../x", "hf://org/x/y", "hf://org/.hidden", "hf://org/a--b",
                                    "hf://org/name.git", "hf://org/name@../main", "hf://org/name@/etc", "hf://-org/x",
                                    "hf:///x", "hf://org/x@"])
def test_hub_ids_are_checked_by_one_validator_before_any_access(source, monkeypatch):
    """A hostile id never reaches huggingface_hub or the file system: the same check as publish --push."""
    from scrnet.checkpoint_io import CheckpointError
    from scrnet.pretrained import from_pretrained

    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # any attempt to use it would fail differently
    with pytest.raises(CheckpointError, match=r"ORG/NAME|not a branch, tag or commit"):
        from_pretrained(source)


def test_plain_hub_ids_and_revisions_are_accepted():
    from scrnet.pretrained import parse_hub_id

    assert parse_hub_id("hf://my-org/scrnet_r18.v2@refs/pr/1") == ("my-org/scrnet_r18.v2", "refs/pr/1")
    assert parse_hub_id("hf://Org1/Name", revision="0123abc") == ("Org1/Name", "0123abc")


def test_a_stored_interpolation_is_refused_and_its_value_never_appears(setup, folder, tmp_path, monkeypatch):
    """A shared config.json (or checkpoint, or eval JSON) with ${oc.env:...} used to read the loading machine's
    environment into eval JSON, reports and re-published cards."""
    _, root, checkpoint, eval_json = setup
    monkeypatch.setenv("SCRNET_TEST_SECRET", "hunter2-do-not-leak")  # in this process, where the CLI runs
    hostile = broken_copy(folder, tmp_path)
    meta = json.loads((hostile / "config.json").read_text())
    meta["config"]["model"]["name"] = "${oc.env:SCRNET_TEST_SECRET}"
    (hostile / "config.json").write_text(json.dumps(meta))
    state = torch.load(checkpoint, weights_only=True)
    state["config"]["data"]["root"] = "${oc.env:SCRNET_TEST_SECRET}"
    torch.save(state, tmp_path / "hostile.pth")
    record = json.loads(Path(eval_json).read_text())
    record["config"]["eval"]["mode"] = "${oc.env:SCRNET_TEST_SECRET}"
    shutil.copy(Path(eval_json).with_suffix(".npz"), tmp_path / "hostile_eval.npz")
    (tmp_path / "hostile_eval.json").write_text(json.dumps(record))
    for args, file, key in (
            (["eval", str(hostile), "--data.root", str(root), "--json", str(tmp_path / "o.json")],
             hostile / "config.json", "model.name"),
            (["publish", str(tmp_path / "hostile.pth"), str(tmp_path / "republished")], tmp_path / "hostile.pth",
             "data.root"),
            (["compare", str(tmp_path / "hostile_eval.json")], tmp_path / "hostile_eval.json", "eval.mode")):
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert str(file) in result.stderr and f"interpolation at {key}" in result.stderr, result.stderr
        assert "hunter2" not in result.stdout + result.stderr
    assert not (tmp_path / "o.json").exists() and not (tmp_path / "republished").exists()


@pytest.mark.parametrize("edit,message", [
    (lambda meta, w: meta.update(class_names="road"), "no 'class_names' list"),
    (lambda meta, w: meta.update(class_names=[1, 2, 3]), "class names are not a list of strings"),
    (lambda meta, w: meta.update(palette=[[0, 0, 0]] * 2), "palette is not one RGB triple"),
    (lambda meta, w: meta.update(palette=[[0, 0, 999]] * 3), "palette is not one RGB triple"),
    (lambda meta, w: meta.update(weights="x"), "no 'weights' object"),
    (lambda meta, w: w.update({k: v.to(torch.int32) for k, v in w.items() if k.endswith("classifier.weight")}),
     "is torch.int32 in the file and torch.float32 in the model"),
])
def test_hostile_values_in_a_published_folder_are_refused_naming_the_file(folder, tmp_path, edit, message):
    """Everything in a shared folder is data: a value of the wrong kind is one CheckpointError naming the file,
    never an internal error or a silent cast."""
    from safetensors.torch import load_file, save_file

    from scrnet.checkpoint_io import CheckpointError, sha256_of
    from scrnet.pretrained import from_pretrained

    hostile = broken_copy(folder, tmp_path)
    meta = json.loads((hostile / "config.json").read_text())
    weights = load_file(str(hostile / "model.safetensors"))
    edit(meta, weights)
    save_file(weights, str(hostile / "model.safetensors"))
    if isinstance(meta["weights"], dict):
        meta["weights"]["sha256"] = sha256_of(hostile / "model.safetensors")
    (hostile / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match=re.escape(message)) as info:
        from_pretrained(hostile)
    assert str(hostile) in str(info.value)
