"""Training as a user runs it: exact resume, kill -9 and SIGINT, torchrun DDP, the non-finite guard, bad configs,
and a short run that overfits a small synthetic set."""

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from cli_helpers import run_like_subprocess
from train_fixtures import synthetic_set, tiny_run

import scrnet
from scrnet.checkpoint_io import list_checkpoints, load
from scrnet.config import load_config
from scrnet.data.synthetic import generate_synthetic
from scrnet.engine import trainer as trainer_module
from scrnet.engine.trainer import Trainer, TrainingAborted, train
from scrnet.engine.training_log import read_log


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synthetic_set(tmp_path_factory.mktemp("synth"), num_train=8)


def small(root, *extra):
    return tiny_run(root, *extra)


def cli(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "scrnet", *args], capture_output=True, text=True, timeout=600,
                          **kwargs)


@pytest.mark.parametrize("accumulate", [1, 2])  # 2: two micro-batches of one image per optimiser step
def test_resume_continues_exactly(synth, tmp_path, accumulate):
    over = ["train.max_iters=20", f"train.accumulate={accumulate}"]
    straight = train(load_config(None, small(synth, *over)), tmp_path / "a", progress=False)
    train(load_config(None, small(synth, *over)), tmp_path / "b", progress=False, until=10)
    assert [i for i, _ in list_checkpoints(tmp_path / "b")][-1] == 10
    resumed = train(load_config(None, small(synth, *over)), tmp_path / "b", resume=True, progress=False)
    assert straight.iteration == resumed.iteration == 20
    a = load(tmp_path / "a" / "checkpoints" / "iter_00000020.pth")
    b = load(tmp_path / "b" / "checkpoints" / "iter_00000020.pth")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    assert a["optimizer"]["state"].keys() == b["optimizer"]["state"].keys()
    for k, state in a["optimizer"]["state"].items():
        assert torch.equal(state["momentum_buffer"], b["optimizer"]["state"][k]["momentum_buffer"])


def test_a_resumed_run_logs_its_history_once(synth, tmp_path):
    """An attempt cut short after its last checkpoint has logged iterations the resumed run trains again: the
    training log keeps every line, and reads (and TensorBoard shows) each iteration once, as the resumed run
    trained it, the same as a run that was never stopped."""
    over = ["train.max_iters=20", "train.checkpoint_interval=10", "train.tensorboard=true"]
    train(load_config(None, small(synth, *over)), tmp_path / "a", progress=False)
    train(load_config(None, small(synth, *over)), tmp_path / "b", progress=False, until=15)
    (tmp_path / "b" / "checkpoints" / "iter_00000015.pth").unlink()  # cut short before it saved iteration 15
    train(load_config(None, small(synth, *over)), tmp_path / "b", resume=True, progress=False)
    def losses(records):
        return [(r["iter"], r["loss"]) for r in records if "loss" in r]

    logged = losses(read_log(tmp_path / "b" / "metrics.jsonl"))
    assert logged == losses(read_log(tmp_path / "a" / "metrics.jsonl"))
    assert [it for it, _ in logged] == [5, 10, 15, 20]
    lines = [json.loads(line) for line in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r.get("resumed_from") for r in lines].count(10) == 1
    assert [it for it, _ in losses(lines)] == [5, 10, 15, 15, 20]  # nothing removed from the file
    attempts = [json.loads(line) for line in (tmp_path / "b" / "environment.jsonl").read_text().splitlines()]
    assert [a["from_iteration"] for a in attempts] == [0, 10]  # what each attempt ran on
    assert all(a["torch"] == torch.__version__ and a["device"] == "cpu" for a in attempts)
    if importlib.util.find_spec("tensorboard"):  # the `log` extra
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        events = EventAccumulator(str(tmp_path / "b" / "tensorboard")).Reload()
        assert [e.step for e in events.Scalars("loss")] == [5, 10, 15, 20]


def test_accumulated_micro_batches_step_like_the_whole_batch(synth, tmp_path):
    """Where BatchNorm is not involved (its layers on their running statistics), two micro-batches of two images give
    the loss and the update of one batch of four: the micro-batch losses are weighted by their valid pixels."""
    trainers = []
    for name, accumulate in (("whole", 1), ("micro", 2)):
        cfg = load_config(None, small(synth, "train.max_iters=2", "train.batch_size=4",
                                      f"train.accumulate={accumulate}"))
        trainers.append(Trainer(cfg, tmp_path / name, progress=False))
    batch = next(iter(trainers[0].loader()))
    batch["mask"][0, :20] = 255  # micro-batches with different numbers of valid pixels
    before = {n: p.detach().clone() for n, p in trainers[0].model.named_parameters()}
    losses = []
    for trainer in trainers:
        trainer.net.train()
        for m in trainer.net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.eval()
        losses.append(trainer.step(batch)[0])
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
    whole, micro = (dict(t.model.named_parameters()) for t in trainers)
    assert sum(not torch.equal(p, before[n]) for n, p in whole.items()) > 10  # the step did update
    for name, p in whole.items():
        torch.testing.assert_close(micro[name], p, rtol=1e-5, atol=1e-6, msg=name)


def test_checkpoint_contents_and_load_checkpoint(synth, tmp_path):
    train(load_config(None, small(synth, "train.max_iters=5", "train.val_interval=5")), tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "best.pth", weights_only=True)  # never runs code
    assert {"model", "config", "class_names", "palette", "normalization", "optimizer", "scheduler", "scaler",
            "iteration", "rng", "best"} <= set(state)
    loaded = scrnet.load_checkpoint(tmp_path / "checkpoints" / "best.pth")
    model, cfg = loaded.model, loaded.config
    assert loaded.class_names[0] == "road" and cfg.model.channels == 32 and not model.training
    assert loaded.palette == [tuple(c) for c in state["palette"]] and not hasattr(model, "palette")
    assert loaded.normalization.mean == (0.485, 0.456, 0.406) and state["format_version"] == 2
    x = torch.randn(1, 3, 50, 70)
    reference = scrnet.build_model(cfg.model).eval()
    reference.load_state_dict(state["model"])
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    resolved = (tmp_path / "config.yaml").read_text()
    assert "mean:" in resolved and "0.485" in resolved and "max_iters: 5" in resolved


def wait_for(path_glob: Path, pattern: str, proc, timeout=120):
    start = time.time()
    while time.time() - start < timeout:
        if list(path_glob.glob(pattern)):
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def test_kill_9_leaves_a_loadable_checkpoint_and_resume_finishes(synth, tmp_path):
    args = ["train", "/dev/null", *small(synth, "train.max_iters=20"), "--work-dir", str(tmp_path)]
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model:\n  name: scrnet_r18\n")
    args[1] = str(cfg_file)
    proc = subprocess.Popen([sys.executable, "-m", "scrnet", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert wait_for(tmp_path / "checkpoints", "iter_*.pth", proc), proc.communicate()
    proc.kill()  # SIGKILL, at whatever point it has reached
    proc.wait()
    found = list_checkpoints(tmp_path)
    assert found and found[-1][0] < 20
    load(found[-1][1])  # the newest complete checkpoint loads
    result = run_like_subprocess(*args, "--resume")  # resumed in this process
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stdout and list_checkpoints(tmp_path)[-1][0] == 20


def test_validation_can_report_the_published_boundary_metrics_as_eval_does(synth, tmp_path):
    from scrnet.evaluation.run import evaluate_checkpoint

    overrides = small(synth, "train.max_iters=2", "train.val_interval=2", "train.checkpoint_interval=2")
    train(load_config(None, [*overrides, "train.val_boundary=true"]), tmp_path, progress=False)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if "val_miou" in r]
    assert len(val) == 1
    summary = evaluate_checkpoint(str(tmp_path / "checkpoints" / "iter_00000002.pth"), device="cpu").summary()
    assert val[0]["val_boundary_iou"] == summary["boundary_iou"]["mean"]
    assert {k: v for k, v in val[0].items() if k.startswith("val_boundary_f")} == {
        f"val_boundary_f{t}": block["mean"] for t, block in summary["boundary_f"].items()}
    train(load_config(None, overrides), tmp_path / "off", progress=False)  # off by default
    records = [json.loads(line) for line in (tmp_path / "off" / "metrics.jsonl").read_text().splitlines()]
    assert not any(k.startswith("val_boundary") for r in records for k in r)


@pytest.mark.slow
def test_a_compiled_network_trains_like_the_eager_one(synth, tmp_path):
    """``train.compile=default`` (Inductor, C++ on the CPU) trains like eager: after 3 steps the network as a whole
    is where eager put it to within 5% of how far eager moved it, and every weight to within 25% of its own step
    (plus a few float32 ulps of its size).

    The compiled kernels sum in another order. For a tensor whose gradient is a sum over every pixel that nearly
    cancels (CRM's zero-initialised ``gamma``, the mask biases), that rounding is a large part of a tiny step: 6.5%
    of ``gamma``'s step was measured, against 0.9% for the whole network. A compiled graph that lost or changed a
    part would move that part's weights by 100% of their step, or not at all."""
    from scrnet.engine.rng import preserved_rng

    overrides = small(synth, "train.max_iters=3", "train.checkpoint_interval=3")
    cfg = load_config(None, overrides)
    with preserved_rng():  # the trainer's initial weights, drawn however train.init_rng says
        start = {k: v.clone() for k, v in Trainer(cfg, tmp_path / "start", progress=False).model.state_dict().items()}
    train(cfg, tmp_path / "eager", progress=False)
    train(load_config(None, [*overrides, "train.compile=default"]), tmp_path / "compiled", progress=False)
    a = load(tmp_path / "eager" / "checkpoints" / "iter_00000003.pth")["model"]
    b = load(tmp_path / "compiled" / "checkpoints" / "iter_00000003.pth")["model"]
    assert a.keys() == b.keys()  # the checkpoint holds the plain model, not the compiled wrapper
    moved, off, steps = 0, 0.0, 0.0
    for key in a:
        if a[key].is_floating_point() and not key.endswith(("running_mean", "running_var")):
            step = (a[key] - start[key]).abs().max()
            ulps = 4 * torch.finfo(a[key].dtype).eps * a[key].abs().max()
            assert (a[key] - b[key]).abs().max() <= 0.25 * step + ulps, key
            off += (a[key] - b[key]).square().sum().item()
            steps += (a[key] - start[key]).square().sum().item()
            moved += bool(step > 0)
    assert moved > 10
    assert math.sqrt(off) <= 0.05 * math.sqrt(steps)


def start_training(synth, work_dir: Path, *overrides: str, new_session: bool = False) -> subprocess.Popen:
    """``scrnet train`` of a tiny 400-iteration run in its own process (its own process group with ``new_session``,
    as a scheduler's job step has), returned once its first checkpoint is written."""
    cfg_file = work_dir / "run.yaml"
    cfg_file.write_text("model:\n  name: scrnet_r18\n")
    proc = subprocess.Popen([sys.executable, "-m", "scrnet", "train", str(cfg_file),
                             *small(synth, "train.max_iters=400", "train.checkpoint_interval=2", *overrides),
                             "--work-dir", str(work_dir)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=new_session)
    assert wait_for(work_dir / "checkpoints", "iter_*.pth", proc)
    return proc


def test_sigint_saves_and_stops_cleanly(synth, tmp_path):
    proc = start_training(synth, tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err
    assert "stopped by signal" in err and "Traceback" not in err
    last = list_checkpoints(tmp_path)[-1][0]
    assert 0 < last < 400 and load(list_checkpoints(tmp_path)[-1][1])["iteration"] == last


def test_sigterm_to_the_process_group_saves_and_stops_with_loader_workers(synth, tmp_path):
    """A scheduler stopping a job (Slurm's scancel or time limit, ``kill -- -PGID``) sends SIGTERM to every process
    of the job, the DataLoader workers included. The workers must outlive it so the main process can finish the
    iteration and save: a worker killed by the signal would make torch abort the run before the checkpoint."""
    proc = start_training(synth, tmp_path, "train.num_workers=2", new_session=True)
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True,
                                              text=True).stdout.split()]
    assert len(workers) >= 2  # the loader's workers, which the signal below reaches too
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "stopped by signal" in err and "Traceback" not in err and "internal error" not in err, err
    last = list_checkpoints(tmp_path)[-1][0]
    assert 0 < last < 400 and load(list_checkpoints(tmp_path)[-1][1])["iteration"] == last


def test_torchrun_ddp_on_cpu(synth, tmp_path):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model:\n  name: scrnet_r18\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
         "-m", "scrnet", "train", str(cfg_file),
         *small(synth, "train.max_iters=6", "train.val_interval=3", "train.val_boundary=true"),
         "--work-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "run"
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "config.yaml", "environment.jsonl",
                                                     "metrics.jsonl"]
    assert len((run / "environment.jsonl").read_text().splitlines()) == 1  # written by rank 0 alone
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    checksums = [r["rank_checksums"] for r in records if "rank_checksums" in r]
    assert len(checksums) == 1 and len(checksums[0]) == 2 and checksums[0][0] == checksums[0][1]
    loss_iters = [r["iter"] for r in records if "loss" in r]
    assert loss_iters == sorted(set(loss_iters))  # one writer: no duplicated lines
    assert [r["iter"] for r in records if "val_miou" in r] == [3, 6]
    assert all(0 <= r["val_boundary_iou"] <= 1 for r in records if "val_miou" in r)  # summed over both ranks
    assert result.stdout.count("finished 6 iterations") == 1


def nan_at_calls(*calls: int):
    """The training loss, made NaN at the given (1-based) calls of ``total_loss``."""
    real = trainer_module.total_loss
    count = {"n": 0}

    def flaky(*args, **kwargs):
        count["n"] += 1
        loss = real(*args, **kwargs)
        return loss * float("nan") if count["n"] in calls else loss

    return flaky


def test_nonfinite_losses_are_skipped_then_abort(synth, tmp_path, monkeypatch, capsys):
    real = trainer_module.total_loss
    monkeypatch.setattr(trainer_module, "total_loss", nan_at_calls(3, 4))
    result = train(load_config(None, small(synth, "train.max_iters=8")), tmp_path / "a", progress=False)
    assert result.iteration == 8
    assert "non-finite loss at iteration 3; update skipped (1 in a row)" in capsys.readouterr().err
    weights = load(tmp_path / "a" / "checkpoints" / "iter_00000008.pth")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())

    monkeypatch.setattr(trainer_module, "total_loss", lambda *a, **k: real(*a, **k) * float("inf"))
    with pytest.raises(TrainingAborted, match="3 non-finite losses in a row at iteration 3; last good checkpoint"):
        train(load_config(None, small(synth, "train.max_iters=8", "train.max_nonfinite=3")), tmp_path / "b",
              progress=False)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_a_deferred_check_skips_a_nonfinite_update_on_the_device(synth, tmp_path, monkeypatch, optimizer):
    """train.check_interval > 1: the step reads nothing back, and the update of a non-finite loss leaves weights,
    optimiser moments and step counts exactly as they were (BatchNorm's running statistics move in the forward pass,
    as they do when the host skips the update); a finite step then updates as usual."""
    cfg = load_config(None, small(synth, "train.max_iters=4", "train.check_interval=2",
                                  f"train.optim.optimizer={optimizer}"))
    trainer = Trainer(cfg, tmp_path, progress=False)
    trainer.net.train()
    batch = next(iter(trainer.loader()))
    trainer.step(batch)  # a finite step first: the optimiser has state to keep
    model = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
    state = [{k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()}
             for s in trainer.optimizer.state.values()]
    real = trainer_module.total_loss
    monkeypatch.setattr(trainer_module, "total_loss", lambda *a, **k: real(*a, **k) * float("nan"))
    loss, flag = trainer.step(batch)
    assert torch.is_tensor(flag) and float(flag) == 1.0 and not torch.isfinite(loss)
    for k, v in trainer.model.named_parameters():
        assert torch.equal(v, model[k]), k
    for before, after in zip(state, trainer.optimizer.state.values()):
        for k, v in before.items():
            assert torch.equal(after[k], v) if torch.is_tensor(v) else after[k] == v, k
    monkeypatch.setattr(trainer_module, "total_loss", real)
    loss, flag = trainer.step(batch)
    assert float(flag) == 0.0 and torch.isfinite(loss)
    assert any(not torch.equal(v, model[k]) for k, v in trainer.model.named_parameters())


def test_a_deferred_check_reports_skips_and_stops_a_run_of_them(synth, tmp_path, monkeypatch, capsys):
    real = trainer_module.total_loss
    monkeypatch.setattr(trainer_module, "total_loss", nan_at_calls(2, 3))
    cfg = load_config(None, small(synth, "train.max_iters=8", "train.check_interval=4"))
    result = train(cfg, tmp_path / "a", progress=False)
    assert result.iteration == 8
    err = capsys.readouterr().err
    assert "2 non-finite loss(es) up to iteration 4; updates skipped (longest run 2, 0 in a row now)" in err
    weights = load(tmp_path / "a" / "checkpoints" / "iter_00000008.pth")["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())
    logged = [json.loads(line) for line in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) for r in logged if "loss" in r)  # the skipped losses left out of the mean

    monkeypatch.setattr(trainer_module, "total_loss", lambda *a, **k: real(*a, **k) * float("inf"))
    with pytest.raises(TrainingAborted, match="4 non-finite losses in a row at iteration 4; last good checkpoint"):
        train(load_config(None, small(synth, "train.max_iters=8", "train.max_nonfinite=3",
                                      "train.check_interval=4", "train.log_interval=8",
                                      "train.checkpoint_interval=8")), tmp_path / "b", progress=False)


OHEM_COUNT = """
import json, sys
import torch
from scrnet.config import load_config
from scrnet.distributed import cleanup
from scrnet.engine import losses
from scrnet.engine.trainer import Trainer

kept = []
real = losses.SegmentationLoss._hard
def counting(self, logits, target, valid, floor):
    out = real(self, logits, target, valid, floor)
    kept.extend([floor, int(out.sum())])
    return out
losses.SegmentationLoss._hard = counting
trainer = Trainer(load_config(None, sys.argv[2:]), sys.argv[1], progress=False)
trainer.net.train()
trainer.step(next(iter(trainer.loader())))
total = torch.tensor(kept, dtype=torch.int64)
if trainer.dist.enabled:
    torch.distributed.all_reduce(total)
if trainer.dist.is_main:
    print("KEPT", json.dumps(total.tolist()))
cleanup(trainer.dist)
"""


@pytest.mark.slow
def test_the_ohem_floor_keeps_the_same_pixels_in_one_process_and_in_two(synth, tmp_path):
    """The same global batch of 4 in one process and in two of 2 (torchrun, gloo), with a threshold that keeps
    nothing, so that the floor alone decides: the floors summed over processes are the global floor (up to rounding
    each half up), and so are the pixels kept, up to pixels tied with the last one kept (each of the main and
    deep-supervision losses). Before the floor was global, two processes kept twice as many."""
    script = tmp_path / "ohem_count.py"
    script.write_text(OHEM_COUNT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    counts = []
    for procs, port in ((1, 29541), (2, 29543)):
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(procs), "--master_port",
             str(port), str(script), str(tmp_path / f"run{procs}"),
             *small(synth, "train.batch_size=4", "train.loss.ohem=true", "train.loss.ohem_thresh=1e-9",
                    "train.loss.ohem_min_kept=1001")],
            capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        counts.append(json.loads(result.stdout.split("KEPT", 1)[1]))
    one, two = counts  # floor, kept for the main loss and each auxiliary one
    assert len(one) >= 4 and len(two) == len(one)
    assert one[::2] == [1001] * (len(one) // 2) and two[::2] == [1002] * (len(one) // 2)  # 2 x round(500.5)
    for floor, kept_one, kept_two in zip(one[::2], one[1::2], two[1::2]):
        assert floor <= kept_one < floor * 1.05 and floor <= kept_two < floor * 1.05  # ties at the k-th only


def test_checkpoint_with_nonfinite_weights_is_refused(synth, tmp_path):
    trainer = Trainer(load_config(None, small(synth, "train.max_iters=2")), tmp_path, progress=False)
    with torch.no_grad():
        next(trainer.model.parameters()).fill_(float("nan"))
    with pytest.raises(TrainingAborted, match="refusing to write a checkpoint with non-finite weights"):
        trainer.save()
    assert not list_checkpoints(tmp_path)


@pytest.mark.parametrize("override,message", [
    ("train.bogus=1", "train.bogus: Key 'bogus' not in 'TrainConfig'"),
    ("train.max_iters=many", "train.max_iters: Value 'many' of type 'str' could not be converted to Integer"),
    ("data.root=/nonexistent/cityscapes", "folder not found: /nonexistent/cityscapes"),
    ("model.num_classes=19", "model.num_classes is 19 but the folder data set at"),
    ("train.amp=fp16", "train.amp=fp16 needs CUDA"),
])
def test_bad_config_fails_before_training_with_one_line(synth, tmp_path, override, message):
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model:\n  name: scrnet_r18\n")
    args = ("train", str(cfg_file), *small(synth), override, "--work-dir", str(tmp_path / "run"))
    # once through the console entry point in a subprocess, the others in this process
    result = cli(*args) if override.startswith("train.bogus") else run_like_subprocess(*args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_overfits_a_small_synthetic_set(tmp_path):
    data = generate_synthetic(tmp_path / "data", num_train=2, num_val=0, size=(128, 256), seed=1)
    overrides = [
        f"data.root={data}", "data.type=folder", "data.val_split=train", "model.name=scrnet_effl0",
        "model.num_classes=9", "model.backbone_weights=imagenet", "model.deep_supervision=false",
        "train.batch_size=2", "train.num_workers=0", "data.train.crop_size=[128,256]", "data.train.scale=[256,128]",
        "data.train.ratio_range=[1.0,1.0]", "data.train.photometric=false", "data.train.flip_prob=0.0",
        "data.train.cat_max_ratio=1.0", "train.max_iters=250", "train.val_interval=0",
        "train.checkpoint_interval=1000", "train.tensorboard=false", "train.optim.optimizer=adamw",
        "train.optim.lr=0.004", "train.optim.weight_decay=0", "train.optim.poly_power=1.0"]
    result = train(load_config(None, overrides), tmp_path / "run", progress=False)
    assert result.best_miou >= 0.9, result.best_miou


def test_tensorboard_scalars_and_prediction_images(synth, tmp_path):
    pytest.importorskip("tensorboard")  # the `log` extra
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(load_config(None, small(synth, "train.max_iters=4", "train.val_interval=4", "train.tensorboard=true",
                                  "train.log_interval=2")), tmp_path, progress=False)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    tags = events.Tags()
    assert {"loss", "lr", "val_miou"} <= set(tags["scalars"]) and {"val/0", "val/1"} <= set(tags["images"])
    assert [e.step for e in events.Scalars("loss")] == [2, 4]


def test_bf16_autocast_and_channels_last_on_cpu(synth, tmp_path):
    result = train(load_config(None, small(synth, "train.max_iters=3", "train.amp=bf16", "train.channels_last=true",
                                           "train.val_interval=3")), tmp_path, progress=False)
    assert result.iteration == 3 and result.best_miou is not None
    weights = load(tmp_path / "checkpoints" / "iter_00000003.pth")["model"]
    assert all(v.dtype != torch.bfloat16 for v in weights.values())  # autocast leaves the weights in float32


def test_failed_checkpoint_write_stops_with_one_line_and_keeps_earlier_ones(synth, tmp_path, monkeypatch):
    import errno

    trainer = Trainer(load_config(None, small(synth, "train.max_iters=10")), tmp_path, progress=False)
    trainer.train(until=5)
    assert [i for i, _ in list_checkpoints(tmp_path)] == [5]
    before = (tmp_path / "checkpoints" / "iter_00000005.pth").read_bytes()

    def full_disk(obj, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(trainer_module.ckpt, "atomic_save", full_disk)
    trainer.iteration = 6
    with pytest.raises(TrainingAborted, match=r"cannot write checkpoint .*iter_00000006\.pth: No space left on "
                                              r"device; the earlier checkpoints in .* are intact"):
        trainer.save()
    assert (tmp_path / "checkpoints" / "iter_00000005.pth").read_bytes() == before


def test_sigterm_skips_validation_and_saves_once(synth, tmp_path, monkeypatch):
    import os
    import signal

    real_step = Trainer.step

    def step(self, batch, stop_requested=False):
        if self.iteration == 2:  # SIGTERM arrives during iteration 3
            os.kill(os.getpid(), signal.SIGTERM)
            stop_requested = True
        return real_step(self, batch, stop_requested)

    monkeypatch.setattr(Trainer, "step", step)
    result = train(load_config(None, small(synth, "train.max_iters=8", "train.val_interval=1")), tmp_path,
                   progress=False)
    assert result.stopped_by_signal == signal.SIGTERM and result.iteration == 3
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in records if "val_miou" in r] == [1, 2]  # none at the stopping iteration
    best, improved = None, []  # validation writes a checkpoint when the mIoU improves; the stop writes one more
    for r in records:
        if "val_miou" in r and (best is None or r["val_miou"] > best):
            best, improved = r["val_miou"], improved + [r["iter"]]
    assert [i for i, _ in list_checkpoints(tmp_path)] == improved + [3]


def test_resume_skips_an_unreadable_newest_checkpoint_and_stops_when_none_is_readable(synth, tmp_path, capsys):
    cfg = small(synth, "train.max_iters=10")
    train(load_config(None, cfg), tmp_path, progress=False, until=5)
    folder = tmp_path / "checkpoints"
    good = (folder / "iter_00000005.pth").read_bytes()
    (folder / "iter_00000007.pth").write_bytes(good[: len(good) // 3])  # torn by a crash mid-write
    (folder / "iter_00000008.pth").write_bytes(b"")  # zero bytes
    capsys.readouterr()
    result = train(load_config(None, cfg), tmp_path, resume=True, progress=False)
    captured = capsys.readouterr()
    assert "iter_00000008.pth: the file is empty" in captured.err and "iter_00000007.pth" in captured.err
    assert f"resumed from {folder / 'iter_00000005.pth'} at iteration 5" in captured.out
    assert result.iteration == 10
    assert (folder / "iter_00000007.pth.unreadable").exists()  # kept for inspection, nothing deleted ...
    assert [i for i, _ in list_checkpoints(tmp_path)] == [5, 10]  # ... and not counted as a checkpoint
    for _, path in list_checkpoints(tmp_path):
        path.write_bytes(b"corrupted")
    with pytest.raises(TrainingAborted, match=r"--resume: no readable checkpoint in .*iter_00000010\.pth"):
        train(load_config(None, cfg), tmp_path, resume=True, progress=False)


KILL_ONE_WORKER = """
import os, signal, sys
from pathlib import Path
from scrnet.cli import main
from scrnet.engine.trainer import Trainer

real_step = Trainer.step
marker = Path({marker!r})


def step(self, batch, stop_requested=False):
    # once per job: rank 1 dies in the middle of iteration {kill_at}, after the checkpoint of iteration 5
    if self.dist.rank == 1 and self.iteration == {kill_at} and not marker.exists():
        marker.write_text(os.environ.get("TORCHELASTIC_RESTART_COUNT", "?"))
        os.kill(os.getpid(), signal.SIGKILL)
    return real_step(self, batch, stop_requested)


Trainer.step = step
sys.exit(main(sys.argv[1:]))
"""


def killed_worker_job(synth, tmp_path) -> tuple[Path, Path, dict, list[str]]:
    """A 12-iteration job whose rank 1 kills itself once at iteration 7 (after the checkpoint of iteration 5): the
    entry script, the marker it leaves, the environment, and the scrnet arguments."""
    cfg_file = tmp_path / "run.yaml"
    cfg_file.write_text("model:\n  name: scrnet_r18\n")
    script = tmp_path / "kill_one.py"
    marker = tmp_path / "killed_once"
    script.write_text(KILL_ONE_WORKER.format(kill_at=7, marker=str(marker)))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = ["train", str(cfg_file), *small(synth, "train.max_iters=12", "train.checkpoint_interval=5",
                                            "train.dist_timeout_s=120")]
    return script, marker, env, args


@pytest.mark.slow
def test_torchrun_restarts_a_killed_worker_and_resumes_to_the_same_weights(synth, tmp_path):
    """Under ``torchrun --max-restarts 1`` a worker killed mid-run (SIGKILL) makes the job restart; with
    ``--resume`` it continues from the last checkpoint and ends with exactly the weights of an uninterrupted run."""
    script, marker, env, args = killed_worker_job(synth, tmp_path)

    def torchrun(entry: list[str], work: Path, port: int, *extra: str):
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                               "--master_port", str(port), *extra, *entry, *args, "--work-dir", str(work),
                               "--resume"], capture_output=True, text=True, timeout=600, env=env)

    killed = torchrun([str(script)], tmp_path / "killed", 29531, "--max-restarts", "1")
    assert killed.returncode == 0, killed.stderr[-3000:]
    assert marker.exists()  # the worker was killed
    assert "resumed from" in killed.stdout and "iter_00000005.pth at iteration 5" in killed.stdout, killed.stdout
    straight = torchrun(["-m", "scrnet"], tmp_path / "straight", 29533)
    assert straight.returncode == 0, straight.stderr[-3000:]
    a = load(tmp_path / "killed" / "checkpoints" / "iter_00000012.pth")["model"]
    b = load(tmp_path / "straight" / "checkpoints" / "iter_00000012.pth")["model"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


@pytest.mark.slow
def test_two_torchrun_nodes_restart_a_killed_worker_and_resume_to_the_same_weights(synth, tmp_path):
    """Two torchrun agents ("nodes", one worker each) on localhost with c10d rendezvous and gloo, as a two-node
    SLURM job runs them: a worker killed mid-run (SIGKILL) makes both agents restart their workers (elastic
    restart, --max-restarts 1); with --resume the job continues from the shared checkpoint folder and ends with
    exactly the weights of an uninterrupted two-node run."""
    script, marker, env, args = killed_worker_job(synth, tmp_path)

    def two_nodes(entry: list[str], work: Path, port: int, job: str):
        agents = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2",
                                    "--nproc_per_node", "1", "--rdzv_backend", "c10d",
                                    "--rdzv_endpoint", f"localhost:{port}", "--rdzv_id", job,
                                    "--max-restarts", "1", *entry, *args, "--work-dir", str(work), "--resume"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
                  for _ in range(2)]
        results = [agent.communicate(timeout=600) for agent in agents]
        return [agent.returncode for agent in agents], results

    codes, results = two_nodes([str(script)], tmp_path / "killed", 29541, "killed")
    assert codes == [0, 0], "\n".join(err[-3000:] for _, err in results)
    assert marker.exists()  # a worker was killed
    out = "".join(o for o, _ in results)
    assert "iter_00000005.pth at iteration 5" in out, out  # the restarted workers resumed from the checkpoint
    codes, results = two_nodes(["-m", "scrnet"], tmp_path / "straight", 29543, "straight")
    assert codes == [0, 0], "\n".join(err[-3000:] for _, err in results)
    a = load(tmp_path / "killed" / "checkpoints" / "iter_00000012.pth")["model"]
    b = load(tmp_path / "straight" / "checkpoints" / "iter_00000012.pth")["model"]
    for key, value in a.items():
        assert torch.equal(value, b[key]), key


def test_two_arms_of_one_seed_start_from_the_same_weights_wherever_their_networks_agree(synth, tmp_path):
    """train.init_rng=per_module (the default): the trainer seeds each part by its name, so a bilinear and a
    neighbour-SRM run of seed 3 share every weight both networks have; shared_stream (configs before format 5)
    draws them in build order, and the classifier differs."""
    def initial(mode: str, init_rng: str) -> dict:
        cfg = load_config(None, small(synth, "train.seed=3", f"model.srm.mode={mode}", f"train.init_rng={init_rng}"))
        return Trainer(cfg, tmp_path / f"{mode}-{init_rng}", progress=False).model.state_dict()

    for init_rng, same in (("per_module", True), ("shared_stream", False)):
        a, b = initial("neighbor", init_rng), initial("bilinear", init_rng)
        shared = [k for k in a if k in b and a[k].is_floating_point()]
        assert len(shared) > 100
        assert all(torch.equal(a[k], b[k]) for k in shared) is same, init_rng
        assert torch.equal(a["decoder.classifier.weight"], b["decoder.classifier.weight"]) is same


def test_frozen_stages_train_resume_export_and_publish(synth, tmp_path):
    """model.frozen_stages=2: the stem and stages 1-2 end exactly as initialised (weights and BN statistics), the
    rest trains; a resumed run ends where a straight one does; the checkpoint exports and publishes with the key."""
    from scrnet.models import build_model

    over = ["train.max_iters=10", "model.frozen_stages=2"]
    cfg = load_config(None, small(synth, *over))
    train(cfg, tmp_path / "a", progress=False)
    train(load_config(None, small(synth, *over)), tmp_path / "b", progress=False, until=5)
    train(load_config(None, small(synth, *over)), tmp_path / "b", resume=True, progress=False)
    a = load(tmp_path / "a" / "checkpoints" / "iter_00000010.pth")
    b = load(tmp_path / "b" / "checkpoints" / "iter_00000010.pth")
    assert all(torch.equal(v, b["model"][k]) for k, v in a["model"].items())
    initial = build_model(cfg.model, init_seed=cfg.train.seed).state_dict()
    frozen = ("backbone.conv1.", "backbone.bn1.", "backbone.layer1.", "backbone.layer2.")
    for key, value in a["model"].items():
        if key.startswith(frozen):
            assert torch.equal(value, initial[key]), key
    trained = [k for k in a["model"] if k.startswith(("backbone.layer3.", "backbone.layer4."))
               and a["model"][k].is_floating_point() and not torch.equal(a["model"][k], initial[k])]
    assert len(trained) > 10
    checkpoint = tmp_path / "a" / "checkpoints" / "iter_00000010.pth"
    result = run_like_subprocess("export", checkpoint, "--onnx", tmp_path / "m.onnx", "--size", "64", "64", "--check")
    assert result.returncode == 0, result.stderr
    result = run_like_subprocess("publish", checkpoint, tmp_path / "published")
    assert result.returncode == 0, result.stderr
    shared = scrnet.from_pretrained(tmp_path / "published")
    assert shared.config.model.frozen_stages == 2
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        assert torch.equal(shared.model(x), scrnet.load_checkpoint(checkpoint).model(x))
