"""`scrnet eval model.onnx`: an exported file is scored on the same split by the same metric code as its
checkpoint (the run config travels in the ONNX metadata); predict takes it too; what cannot work says so."""

import json

import pytest
from cli_helpers import run
from data_fixtures import make_folder
from model_fixtures import varied_r18

import scrnet
from scrnet.config import Config, DataConfig

pytest.importorskip("onnxruntime")  # the export extra


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("onnx")
    root = make_folder(base / "data", "val", n=3, size=(40, 56))
    model = varied_r18(num_classes=3, channels=16, seed=0)
    config = Config(model=model.cfg, data=DataConfig(type="folder", root=str(root), mean=[0.1, 0.2, 0.3],
                                                     std=[0.5, 0.6, 0.7]))
    checkpoint = scrnet.save_checkpoint(model, base / "m.pth", ["a", "b", "c"], [(0, 0, 0), (9, 9, 9), (99, 9, 9)],
                                        config)
    onnx = base / "m.onnx"
    code, _, err = run("export", checkpoint, "--onnx", onnx, "--size", "64", "64")
    assert code == 0, err
    return base, root, checkpoint, onnx


def test_eval_scores_the_onnx_file_like_its_checkpoint(exported):
    base, root, checkpoint, onnx = exported
    results = {}
    for source in (checkpoint, onnx):
        out = base / f"{source.suffix[1:]}.json"
        code, stdout, err = run("eval", source, "--json", out)
        assert code == 0, err
        results[source.suffix] = json.loads(out.read_text())
    a, b = results[".pth"], results[".onnx"]
    assert b["num_images"] == a["num_images"] == 3
    assert abs(a["miou"] - b["miou"]) < 1e-3 and abs(a["aacc"] - b["aacc"]) < 1e-3
    loaded = scrnet.from_pretrained(onnx)  # the config, classes, palette and normalisation came with the file
    assert loaded.config == scrnet.load_checkpoint(checkpoint).config
    assert loaded.class_names == ["a", "b", "c"] and list(loaded.normalization.mean) == [0.1, 0.2, 0.3]


def test_predict_takes_the_onnx_file(exported, tmp_path):
    import cv2

    base, root, checkpoint, onnx = exported
    image = sorted((root / "val" / "images").iterdir())[0]
    for source, dst in ((checkpoint, tmp_path / "a"), (onnx, tmp_path / "b")):
        assert run("predict", source, image, "--format", "trainid", "--out", dst)[0] == 0
    a = cv2.imread(str(tmp_path / "a" / "img0.png"), cv2.IMREAD_UNCHANGED)
    b = cv2.imread(str(tmp_path / "b" / "img0.png"), cv2.IMREAD_UNCHANGED)
    assert (a == b).mean() > 0.999
    code, _, err = run("predict", onnx, image, "--show-offsets", "--out", tmp_path / "c")
    assert code == 2 and "no SRM offsets" in err


def test_what_an_onnx_file_cannot_do_is_one_line(exported, tmp_path):
    base, _, _, onnx = exported
    for args, message in ((("export", onnx, "--onnx", tmp_path / "x.onnx"), "is already an ONNX graph"),
                          (("benchmark", onnx), "benchmark the checkpoint it came from"),
                          (("publish", onnx, tmp_path / "pub"), "publish needs weights")):
        code, _, err = run(*args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    import onnx as onnx_lib

    proto = onnx_lib.load(str(onnx))
    kept = [p for p in proto.metadata_props if p.key != "scrnet.config"]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    old = tmp_path / "old.onnx"
    onnx_lib.save(proto, str(old))
    code, _, err = run("eval", old)
    assert code == 2 and "holds no scrnet run config" in err
