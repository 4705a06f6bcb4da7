"""Checkpoints and configs across versions: the stored version-1 fixture loads and resumes, renamed keys are
mapped, newer files are refused in one line naming both versions and the unknown keys, and unreadable files are
errors that name them."""

import gzip
import shutil
from pathlib import Path

import pytest
import torch

import scrnet
from scrnet.checkpoint_io import FORMAT_VERSION, CheckpointError, atomic_save, load, newest_readable
from scrnet.config import CONFIG_FORMAT, ConfigError, config_from_dict, config_to_dict, load_config, upgrade_config

FIXTURE = Path(__file__).parents[1] / "fixtures" / "checkpoint_v1.pth.gz"


@pytest.fixture
def v1(tmp_path) -> Path:
    path = tmp_path / "v1.pth"
    with gzip.open(FIXTURE) as f, path.open("wb") as g:
        shutil.copyfileobj(f, g)
    return path


def test_the_fixture_is_version_1(v1):
    state = torch.load(v1, weights_only=True)
    assert "format_version" not in state and state["config"]["model"]["aux_weight"] == 0.25
    assert "format_version" not in state["config"]


def test_a_version_1_checkpoint_loads_with_renamed_keys_mapped(v1):
    loaded = scrnet.load_checkpoint(v1)
    assert loaded.config.train.loss.aux_weight == 0.25  # was model.aux_weight
    assert loaded.config.model.drop_path_rate is None  # v1 stored 0.1 for a backbone that never used it
    assert loaded.config.format_version == CONFIG_FORMAT
    # the SRM it trained: mask over cat[u, f'], sampling u (the defaults before config format 3)
    assert (loaded.config.model.srm.mask_input, loaded.config.model.srm.sample_from) == ("guide", "upsampled")
    assert all(srm.sample_from == "upsampled" for srm in loaded.model.decoder.refine)
    assert loaded.normalization.mean == (0.498, 0.498, 0.498) and loaded.normalization.std == (0.502,) * 3
    assert loaded.class_names[0] == "road" and len(loaded.palette) == 9
    state = torch.load(v1, weights_only=True)
    for key, value in loaded.model.state_dict().items():
        assert torch.equal(value, state["model"][key]), key
    assert loaded.model(torch.rand(1, 3, 40, 56)).shape == (1, 9, 40, 56)


def test_training_resumes_from_a_version_1_checkpoint(v1, tmp_path):
    from scrnet.data.synthetic import generate_synthetic
    from scrnet.engine.trainer import Trainer, TrainingAborted

    data = generate_synthetic(tmp_path / "data", 4, 2, (64, 64), 0)
    work = tmp_path / "run"
    (work / "checkpoints").mkdir(parents=True)
    shutil.copy(v1, work / "checkpoints" / "iter_00000002.pth")
    cfg = load_config(Path(__file__).parents[2] / "configs" / "synthetic" / "scrnet_effl0.yaml", [
        f"data.root={data}", "model.backbone_weights=null", "train.max_iters=3", "train.batch_size=2",
        "train.num_workers=0", "train.val_interval=0", "train.checkpoint_interval=3", "train.tensorboard=false",
        "train.device=cpu", "data.train.crop_size=[64,64]", "data.train.scale=[64,64]", "model.channels=16"])
    # SRM's defaults changed in config format 3, CRM's attention in 4: the run must name the network the checkpoint
    # trained
    with pytest.raises(TrainingAborted) as info:
        Trainer(cfg, work, resume=True, progress=False)
    message = str(info.value)
    assert "model.srm.mask_input: checkpoint 'guide', this run 'hidden'" in message and "\n" not in message
    assert "model.srm.sample_from: checkpoint 'upsampled', this run 'coarse'" in message
    assert "model.context.attention: checkpoint 'danet', this run 'cbam'" in message
    assert message.endswith("pass model.context.attention=danet model.srm.mask_input=guide "
                            "model.srm.sample_from=upsampled")
    cfg = load_config(Path(__file__).parents[2] / "configs" / "synthetic" / "scrnet_effl0.yaml", [
        f"data.root={data}", "model.backbone_weights=null", "train.max_iters=3", "train.batch_size=2",
        "train.num_workers=0", "train.val_interval=0", "train.checkpoint_interval=3", "train.tensorboard=false",
        "train.device=cpu", "data.train.crop_size=[64,64]", "data.train.scale=[64,64]", "model.channels=16",
        "model.srm.mask_input=guide", "model.srm.sample_from=upsampled", "model.context.attention=danet"])
    trainer = Trainer(cfg, work, resume=True, progress=False)
    assert trainer.iteration == 2
    trainer.train()
    assert load(work / "checkpoints" / "iter_00000003.pth")["format_version"] == FORMAT_VERSION


def test_a_newer_checkpoint_is_refused_naming_both_versions_and_the_unknown_keys(v1, tmp_path):
    state = torch.load(v1, weights_only=True)
    state["format_version"] = FORMAT_VERSION + 1
    state["teacher"] = {}
    newer = tmp_path / "newer.pth"
    torch.save(state, newer)
    with pytest.raises(CheckpointError) as exc:
        scrnet.load_checkpoint(newer)
    message = str(exc.value)
    assert f"format version {FORMAT_VERSION + 1}, newer than this scrnet's {FORMAT_VERSION}" in message
    assert "teacher" in message and str(newer) in message and "\n" not in message


def test_a_newer_config_is_refused_naming_both_versions_and_the_unknown_keys(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(f"format_version: {CONFIG_FORMAT + 1}\nmodel:\n  name: scrnet_r18\n  lora_rank: 4\n")
    with pytest.raises(ConfigError, match=rf"{path} has config format version {CONFIG_FORMAT + 1}, newer than "
                                          rf"this scrnet's {CONFIG_FORMAT} \(unknown keys: \['model.lora_rank'\]\)"):
        load_config(path)


def test_an_old_yaml_with_a_renamed_key_is_upgraded_with_a_warning(tmp_path):
    path = tmp_path / "old.yaml"
    path.write_text("model:\n  name: scrnet_r18\n  aux_weight: 0.3\n")
    with pytest.warns(FutureWarning, match="model.aux_weight is now train.loss.aux_weight"):
        cfg = load_config(path)
    assert cfg.train.loss.aux_weight == 0.3 and cfg.format_version == CONFIG_FORMAT
    with pytest.warns(FutureWarning, match="override: model.aux_weight is now train.loss.aux_weight"):
        assert load_config(None, ["model.aux_weight=0.2"]).train.loss.aux_weight == 0.2


def test_the_resolved_config_round_trips_and_keeps_its_version():
    cfg = load_config(None, ["model.name=scrnet_van_b1", "model.drop_path_rate=0.2"])
    d = config_to_dict(cfg)
    assert d["format_version"] == CONFIG_FORMAT and upgrade_config(d) == d
    assert config_from_dict(d) == cfg


@pytest.mark.parametrize("content,message", [
    (b"", "the file is empty"),
    (b"this is not a checkpoint", "cannot load checkpoint"),
    (None, "is not an SCRNet checkpoint"),
])
def test_unreadable_files_are_one_line_errors_naming_them(tmp_path, content, message):
    path = tmp_path / "model.pth"
    if content is None:
        torch.save({"weights": torch.zeros(2)}, path)
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message) as exc:
        scrnet.load_checkpoint(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)


def test_newest_readable_skips_torn_files_with_a_warning_and_names_all_when_none_loads(tmp_path):
    folder = tmp_path / "checkpoints"
    atomic_save({"model": {}, "iteration": 10}, folder / "iter_00000010.pth")
    atomic_save({"model": {}, "iteration": 20}, folder / "iter_00000020.pth")
    good = (folder / "iter_00000020.pth").read_bytes()
    (folder / "iter_00000030.pth").write_bytes(good[: len(good) // 2])  # torn mid-write
    (folder / "iter_00000040.pth").write_bytes(b"")  # zero bytes
    with pytest.warns(UserWarning) as caught:
        path, state = newest_readable(tmp_path)
    assert path.name == "iter_00000020.pth" and state["iteration"] == 20
    assert len(caught) == 2 and "iter_00000040.pth: the file is empty" in str(caught[0].message)
    assert "iter_00000030.pth" in str(caught[1].message)
    for name in ("iter_00000010.pth", "iter_00000020.pth"):
        (folder / name).write_bytes(b"garbage")
    with pytest.warns(UserWarning), pytest.raises(CheckpointError) as exc:
        newest_readable(tmp_path)
    assert all(f"iter_000000{i}0.pth" in str(exc.value) for i in (1, 2, 3, 4))
    assert newest_readable(tmp_path / "empty") is None


def test_stored_configs_of_format_2_keep_the_sampling_they_trained_with():
    """Format 3 made srm.sample_from=coarse the default; a stored config of an older format (every key written,
    sample_from absent) is read as upsampled, what that network computed. A hand-written file gets the default."""
    from scrnet.config import config_from_dict, config_to_dict, upgrade_config

    d = config_to_dict(load_config(None, []))
    d["format_version"] = 2
    del d["model"]["srm"]["sample_from"]
    assert config_from_dict(d).model.srm.sample_from == "upsampled"
    assert upgrade_config({"model": {"srm": {"mode": "pixel"}}})["model"]["srm"] == {"mode": "pixel"}
    assert load_config(None, []).model.srm.sample_from == "coarse"


def test_stored_configs_of_format_3_keep_their_attention_and_head():
    """Format 4 added model.fusion (default conv3x3, what every older network computed) and made CBAM CRM's default
    attention; a stored format-3 config (attention written out, no fusion key) builds the network it trained."""
    from scrnet.config import config_from_dict, config_to_dict
    from scrnet.models import build_model, model_config

    d = config_to_dict(load_config(None, []))
    d["format_version"] = 3
    d["model"]["context"]["attention"] = "danet"
    del d["model"]["fusion"]
    cfg = config_from_dict(d).model
    assert (cfg.context.attention, cfg.fusion) == ("danet", "conv3x3")
    old = build_model(model_config("scrnet_r18", ["context.attention=danet"])).state_dict()
    assert build_model(cfg).state_dict().keys() == old.keys()
    assert (load_config(None, []).model.context.attention, load_config(None, []).model.fusion) == ("cbam", "conv3x3")


def test_atomic_write_leaves_the_old_file_or_the_new_one_with_ordinary_permissions(tmp_path):
    from scrnet.outputs import atomic_write

    path = tmp_path / "ledger.json"
    atomic_write(path, lambda f: f.write(b"old"))
    assert path.read_bytes() == b"old" and oct(path.stat().st_mode & 0o777) != "0o600"  # not mkstemp's private mode

    def torn(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, torn)
    assert path.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["ledger.json"]


def test_stored_configs_of_format_4_keep_the_shared_init_stream():
    """Format 5 added train.init_rng (default per_module); a stored format-4 config (no such key) is read as
    shared_stream, how its weights were drawn, so it retrains identically. A hand-written file gets the default."""
    from scrnet.config import ConfigError, config_from_dict, config_to_dict

    d = config_to_dict(load_config(None, []))
    d["format_version"] = 4
    del d["train"]["init_rng"]
    assert config_from_dict(d).train.init_rng == "shared_stream"
    assert load_config(None, []).train.init_rng == "per_module"
    with pytest.raises(ConfigError, match="train.init_rng must be one of"):
        load_config(None, ["train.init_rng=random"])
