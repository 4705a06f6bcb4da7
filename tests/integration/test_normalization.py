"""One owner of the input normalisation: a model loaded from a checkpoint is fed exactly the mean/std it was
trained with, by eval, predict, export, the public build_dataset and the trainer, and never ImageNet's by
default. The checkpoint here stores a deliberately unusual mean/std, so any code path that works it out again
(from the backbone, or from a default) feeds different numbers and fails."""

import json

import numpy as np
import pytest
import torch
from data_fixtures import make_folder

import scrnet
from scrnet.cli import main
from scrnet.config import Config, ConfigError, load_config
from scrnet.data import DataConfig, build_dataset, read_image
from scrnet.models import SCRNet

MEAN, STD = [0.1, 0.2, 0.3], [0.5, 0.6, 0.7]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = make_folder(tmp_path_factory.mktemp("data"), "val", n=2, size=(40, 56))
    make_folder(root, "train", n=2, size=(40, 56))
    model = scrnet.create_model("scrnet_r18", num_classes=3, channels=16)
    config = Config(model=model.cfg, data=DataConfig(type="folder", root=str(root), mean=MEAN, std=STD))
    path = scrnet.save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "m.pth", ["a", "b", "c"],
                                  [(0, 0, 0), (1, 1, 1), (2, 2, 2)], config)
    return root, path


def expected(rgb: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    return (x - torch.tensor(MEAN)[:, None, None]) / torch.tensor(STD)[:, None, None]


@pytest.fixture
def model_inputs():
    """Every tensor an SCRNet receives while the test runs."""
    seen = []

    def hook(module, args):
        if isinstance(module, SCRNet):
            seen.append(args[0].detach().float().cpu())

    handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
    yield seen
    handle.remove()


def test_checkpoint_stores_it(setup):
    loaded = scrnet.load_checkpoint(setup[1])
    assert list(loaded.normalization.mean) == MEAN and list(loaded.normalization.std) == STD
    assert torch.load(setup[1], weights_only=True)["normalization"] == {"mean": MEAN, "std": STD}


def test_a_loaded_models_own_normalization_is_the_checkpoints(setup, tmp_path):
    """model.normalization (what the README's quick start uses) used to be the backbone's default even for a model
    trained with another mean/std."""
    loaded = scrnet.load_checkpoint(setup[1])
    assert list(loaded.model.normalization.mean) == MEAN and list(loaded.model.normalization.std) == STD
    from scrnet.hub.publish import publish

    publish(setup[1], tmp_path / "pub")
    folder = scrnet.from_pretrained(tmp_path / "pub")
    assert list(folder.model.normalization.mean) == MEAN and list(folder.model.normalization.std) == STD
    fresh = scrnet.create_model("scrnet_r18", num_classes=3, channels=16)  # built in Python: the backbone's
    assert fresh.normalization.mean == (0.485, 0.456, 0.406)


def test_eval_feeds_it(setup, model_inputs):
    from scrnet.evaluation.run import evaluate_checkpoint

    root, path = setup
    evaluate_checkpoint(str(path), [f"data.root={root}"], device="cpu")
    first = read_image(sorted((root / "val" / "images").iterdir())[0])
    torch.testing.assert_close(model_inputs[0], expected(first), rtol=0, atol=1e-6)


def test_predict_feeds_it(setup, model_inputs):
    from scrnet.inference.predict import Predictor

    rgb = np.random.default_rng(0).integers(0, 256, (40, 56, 3), dtype=np.uint8)
    Predictor(scrnet.load_checkpoint(setup[1]), torch.device("cpu")).predict(rgb)
    torch.testing.assert_close(model_inputs[0], expected(rgb), rtol=0, atol=1e-6)


def test_export_writes_it(setup, tmp_path):
    onnx = pytest.importorskip("onnx")  # the export extra
    out = tmp_path / "m.onnx"
    assert main(["export", str(setup[1]), "--onnx", str(out), "--size", "64", "64"]) == 0
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert json.loads(meta["scrnet.normalization"])["mean"] == MEAN
    assert json.loads(meta["scrnet.normalization"])["std"] == STD


def test_build_dataset_uses_the_checkpoints(setup):
    root, path = setup
    data = scrnet.load_checkpoint(path).config.data
    dataset = build_dataset(data, "val", train=False)
    item = dataset[0]
    assert item["image"].dtype == torch.uint8
    torch.testing.assert_close(dataset.normalize(item["image"][None]),
                               expected(item["image"].permute(1, 2, 0).numpy()), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="data.mean/data.std are unset"):
        build_dataset(DataConfig(type="folder", root=str(root)), "val", train=False)


def test_the_trainer_takes_it_from_the_backbone_when_unset_and_stores_it(setup, tmp_path):
    from scrnet.engine.trainer import Trainer

    root, _ = setup
    base = [f"data.root={root}", "data.type=folder", "data.train_split=train", "model.num_classes=3",
            "train.num_workers=0", "train.tensorboard=false", "model.backbone_weights=null", "model.channels=16"]
    lite = Trainer(load_config(None, ["model.name=scrnet_effl0", *base]), tmp_path / "a", progress=False)
    assert lite.normalize.mean == (0.498, 0.498, 0.498)  # EfficientNet-Lite's, not ImageNet's
    assert "0.498" in (tmp_path / "a" / "config.yaml").read_text()
    own = Trainer(load_config(None, ["model.name=scrnet_r18", *base, f"data.mean={MEAN}", f"data.std={STD}"]),
                  tmp_path / "b", progress=False)
    assert list(own.normalize.mean) == MEAN and own.state()["normalization"] == {"mean": MEAN, "std": STD}
