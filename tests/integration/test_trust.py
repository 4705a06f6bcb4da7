"""The second trust round (issue 34) as a user meets it: a new run never touches an old one, a model card states only
what was measured on that model, every failure is one line with the right exit code, and renamed classes are said."""

import json
import re

import pytest
import torch
from cli_helpers import run
from data_fixtures import make_folder
from model_fixtures import varied_r18
from train_fixtures import synthetic_set, tiny_run

import scrnet
from scrnet import checkpoint_io as ckpt
from scrnet.config import Config, DataConfig, load_config
from scrnet.engine.trainer import train
from scrnet.evaluation.metrics import METRICS_VERSION

CLASSES = ["a", "b", "c"]
PALETTE = [(10, 20, 30), (40, 50, 60), (70, 80, 90)]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic_set(tmp_path_factory.mktemp("synth"), num_train=4)


def small(root, *extra):
    return tiny_run(root, "train.keep_last=2", *extra, channels=16, interval=2)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A folder data set of three classes, a checkpoint trained on none of it (seeded random weights) and a
    published-style eval of it."""
    base = tmp_path_factory.mktemp("trust")
    root = make_folder(base / "data", "val", n=2, size=(40, 56), classes=CLASSES)
    model = varied_r18(num_classes=3, channels=16, seed=0)
    config = Config(model=model.cfg, data=DataConfig(type="folder", root=str(root)))
    checkpoint = scrnet.save_checkpoint(model, base / "model.pth", CLASSES, PALETTE, config)
    return base, root, checkpoint


# ------------------------------------------------------------------------------- nothing of an earlier run is lost

def test_a_new_run_refuses_a_work_dir_that_holds_a_run(synth, tmp_path):
    """Regression: a second `scrnet train` into the same work dir overwrote config.yaml, appended to metrics.jsonl
    and replaced best.pth; now it is refused in one line naming the folder and both ways out, and nothing changes."""
    work = tmp_path / "run"
    config = tmp_path / "c.yaml"
    config.write_text("")
    code, out, err = run("train", config, "--work-dir", work, *small(synth, "train.max_iters=2"))
    assert code == 0, err
    before = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    code, out, err = run("train", config, "--work-dir", work, *small(synth, "train.max_iters=4", "train.seed=1"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"{work} already holds a run (config.yaml, metrics.jsonl, checkpoints/" in err
    assert "--resume" in err and "--work-dir DIR" in err
    after = {p.relative_to(work): p.read_bytes() for p in work.rglob("*") if p.is_file()}
    assert after == before  # not one byte of the earlier run changed
    code, out, err = run("train", config, "--work-dir", work, "--resume", *small(synth, "train.max_iters=4"))
    assert code == 0, err  # --resume continues it


def test_prune_deletes_only_the_checkpoints_of_the_run_that_wrote_them(synth, tmp_path):
    """Regression: pruning kept the highest iteration numbers in the folder, whoever wrote them, so an old run's
    iter_00080000.pth made a new run delete its own first checkpoint as soon as it was written. Checkpoints that
    another run or a user put in the folder are never deleted; the run's own are pruned to train.keep_last, across a
    resume too."""
    work = tmp_path / "run"
    first = train(load_config(None, small(synth, "train.max_iters=8")), work, progress=False, until=4)
    assert first.iteration == 4 and [it for it, _ in ckpt.list_checkpoints(work)] == [2, 4]
    foreign = [ckpt.checkpoint_path(work, it) for it in (1, 3)]
    for path in foreign:
        path.write_bytes(b"a file of someone else's")
    run_id = ckpt.load(ckpt.checkpoint_path(work, 4))["run_id"]
    train(load_config(None, small(synth, "train.max_iters=8")), work, resume=True, progress=False)
    assert [it for it, _ in ckpt.list_checkpoints(work)] == [1, 3, 6, 8]
    assert all(p.read_bytes() == b"a file of someone else's" for p in foreign)
    assert ckpt.load(ckpt.checkpoint_path(work, 8))["run_id"] == run_id
    assert ckpt.written_by_run(work, run_id) == {"iter_00000006.pth", "iter_00000008.pth"}


# ------------------------------------------------------------- a model card states only what was measured on it

def test_publish_refuses_an_eval_of_other_weights_or_of_an_onnx_file(data, tmp_path):
    base, root, checkpoint = data
    other = scrnet.save_checkpoint(varied_r18(num_classes=3, channels=16, seed=1), tmp_path / "other.pth", CLASSES,
                                   PALETTE, Config(model=varied_r18(3, 16, 1).cfg,
                                                   data=DataConfig(type="folder", root=str(root))))
    assert run("eval", other, "--json", tmp_path / "other.json")[0] == 0
    code, _, err = run("publish", checkpoint, tmp_path / "out", "--eval", tmp_path / "other.json")
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert f"--eval {tmp_path / 'other.json'} measured other weights" in err and str(checkpoint) in err
    assert not (tmp_path / "out").exists()
    pytest.importorskip("onnxruntime")
    assert run("export", checkpoint, "--onnx", tmp_path / "m.onnx", "--size", 64, 64)[0] == 0
    assert run("eval", tmp_path / "m.onnx", "--data.root", root, "--json", tmp_path / "onnx.json")[0] == 0
    code, _, err = run("publish", checkpoint, tmp_path / "out", "--eval", tmp_path / "onnx.json")
    assert code == 2 and "scored an exported 'onnx' graph, not the weights of" in err, err
    record = json.loads((tmp_path / "other.json").read_text())
    del record["measured"]  # an eval JSON of an earlier scrnet: nothing says what it measured
    (tmp_path / "old.json").write_text(json.dumps(record))
    code, _, err = run("publish", other, tmp_path / "out", "--eval", tmp_path / "old.json")
    assert code == 2 and "does not record what it measured" in err, err


def test_the_card_takes_the_protocol_of_the_eval_that_produced_its_numbers(data, tmp_path):
    """Regression: an eval run with --mode slide --tta was published as '`whole` inference'."""
    base, root, checkpoint = data
    code, _, err = run("eval", checkpoint, "--mode", "slide", "--tta", "eval.crop_size=[32,32]",
                       "eval.stride=[16,16]", "--json", tmp_path / "slide.json")
    assert code == 0, err
    record = json.loads((tmp_path / "slide.json").read_text())
    measured = record["measured"]
    assert measured["kind"] == "weights" and measured["scrnet_version"] == scrnet.__version__
    assert record["metrics_version"] == METRICS_VERSION  # compare pools only runs scored by equal definitions
    assert measured["sha256"] == scrnet.loading.weights_digest(scrnet.load_checkpoint(checkpoint).model)
    assert measured["protocol"]["mode"] == "slide" and measured["protocol"]["tta"] is True
    code, _, err = run("publish", checkpoint, tmp_path / "pub", "--eval", tmp_path / "slide.json")
    assert code == 0, err
    card = (tmp_path / "pub" / "README.md").read_text()
    assert "Protocol: `slide` inference" in card and "windows [32, 32] every [16, 16]" in card
    assert "multi-scale" in card and "`whole` inference" not in card
    # the published folder holds the same weights: its eval publishes too (the digest ignores the container)
    assert run("eval", tmp_path / "pub", "--data.root", root, "--json", tmp_path / "pub.json")[0] == 0
    assert run("publish", tmp_path / "pub", tmp_path / "again", "--eval", tmp_path / "pub.json")[0] == 0


# ---------------------------------------------------------------------- every failure is one line, right exit code

def test_a_bad_file_read_by_a_loader_worker_is_one_line_naming_it(data, tmp_path):
    """Regression: a DataLoader worker's DataError printed torch's 15-line 'Caught DataError in DataLoader worker
    process 0 ... Original Traceback' with library paths; and a data error mid-run exited 2 (bad usage)."""
    _, root, checkpoint = data
    bad = make_folder(tmp_path / "bad", "val", n=2, size=(40, 56), classes=CLASSES)
    (bad / "val" / "images" / "img1.png").write_bytes(b"not an image")
    for workers in ("0", "1"):
        code, out, err = run("eval", checkpoint, "--data.root", bad, "--workers", workers)
        assert code == 1, (workers, err)
        assert len(err.strip().splitlines()) == 1, err
        assert "Caught" not in err and "Traceback" not in err
        assert re.search(r"scrnet eval: failed: unreadable or truncated image .*img1\.png$", err.strip()), err


def test_out_of_gpu_memory_is_one_line_saying_what_to_change(data, monkeypatch):
    """Regression: torch.OutOfMemoryError (what a 24-GB card meets first with the Cityscapes recipe) was reported as
    'internal error (a bug in scrnet)'. The CUDA allocator cannot fail on the CPU, so the evaluation raises it."""
    from scrnet.evaluation import run as run_module

    _, root, checkpoint = data

    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of "
                                     "23.69 GiB\nof which 1.2 GiB is free.")

    monkeypatch.setattr(run_module, "evaluate", out_of_memory)
    code, _, err = run("eval", checkpoint)
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "out of GPU memory (CUDA out of memory. Tried to allocate 2.00 GiB" in err
    assert "--mode slide" in err and "bug" not in err


def test_out_of_gpu_memory_in_training_names_the_training_knobs(synth, tmp_path, monkeypatch):
    from scrnet.engine import trainer as trainer_module

    def out_of_memory(self, batch, stop_requested=False):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 4.00 GiB.")

    monkeypatch.setattr(trainer_module.Trainer, "step", out_of_memory)
    config = tmp_path / "c.yaml"
    config.write_text("")
    code, _, err = run("train", config, "--work-dir", tmp_path / "w", *small(synth, "train.max_iters=2"))
    assert code == 1 and len(err.strip().splitlines()) == 1, err
    assert "out of GPU memory" in err and "train.accumulate=2" in err and "train.amp=bf16" in err


def test_a_data_error_while_predicting_is_a_failed_run(data, tmp_path, monkeypatch):
    """Regression: a data error raised in the middle of predict exited 2 ('bad usage'); a failed run exits 1."""
    from scrnet.data.io import DataError
    from scrnet.inference import predict as predict_module

    _, root, checkpoint = data
    image = sorted((root / "val" / "images").iterdir())[0]

    def unreadable(*args, **kwargs):
        raise DataError("unreadable video clip.mp4: no frame could be decoded")

    monkeypatch.setattr(predict_module, "predict_inputs", unreadable)
    code, _, err = run("predict", checkpoint, image, "--out", tmp_path / "p")
    assert code == 1 and "scrnet predict: failed: unreadable video clip.mp4" in err, err


# ---------------------------------------------------------------------------------- renamed classes are said

@pytest.mark.parametrize("renamed", ["foo", "${oc.env:HOME}"])
def test_eval_of_renamed_classes_scores_by_index_and_says_so_everywhere(data, tmp_path, renamed):
    """Regression: a model whose class names differ from the data set's was scored by index without a word, and
    `eval --report` died with a KeyError on the name (an internal error). Names are plain strings: an OmegaConf
    interpolation in one is never resolved."""
    base, root, _ = data
    names = [renamed, "b", "c"]
    model = varied_r18(num_classes=3, channels=16, seed=0)
    checkpoint = scrnet.save_checkpoint(model, tmp_path / "renamed.pth", names, PALETTE,
                                        Config(model=model.cfg, data=DataConfig(type="folder", root=str(root))))
    pytest.importorskip("matplotlib")
    code, out, err = run("eval", checkpoint, "--json", tmp_path / "e.json", "--report", tmp_path / "r.html")
    assert code == 0, err
    assert f"note: the model names 1 of its 3 classes differently from the data set (model {renamed!r} as 'a')" \
           in out and "scored by index" in out
    record = json.loads((tmp_path / "e.json").read_text())
    assert list(record["iou"]) == CLASSES and record["class_names"] == CLASSES
    assert record["model_class_names"] == names
    html = (tmp_path / "r.html").read_text()
    assert "scored by index" in html and "1 of its 3 classes" in html
    assert renamed in html and renamed in out  # ${oc.env:HOME} stays text: never resolved
    code, _, err = run("eval", data[2], "--json", tmp_path / "p.json")
    assert code == 0, err
    assert "model_class_names" not in json.loads((tmp_path / "p.json").read_text())  # agreeing names add nothing


def test_the_model_config_refuses_options_its_srm_mode_does_not_use(synth, tmp_path):
    """Regression: srm.mode=carafe with srm.gate=guided built no gate, and the two identical networks became two
    compare groups."""
    config = tmp_path / "c.yaml"
    config.write_text("")
    code, _, err = run("train", config, "--work-dir", tmp_path / "w",
                       *small(synth, "model.srm.mode=carafe", "model.srm.gate=guided"))
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "model.srm.gate='guided' does not apply to model.srm.mode=carafe" in err
    assert "model.srm.carafe_kernel" in err
    assert not (tmp_path / "w").exists()
