"""Library calls leave the caller's process as they found it (issue 34): each test reads the process-wide state
before and after one call. Every one of them failed before the change."""

import logging
import random
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import scrnet
from scrnet import distributed, runtime
from scrnet.config import load_config
from scrnet.data.synthetic import generate_synthetic


def test_import_scrnet_leaves_opencvs_thread_count_alone():
    code = ("import cv2; cv2.setNumThreads(3); import scrnet, scrnet.evaluation.evaluate, scrnet.engine.trainer; "
            "print(cv2.getNumThreads())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "3"


def test_loader_workers_use_one_opencv_thread():
    import cv2

    from scrnet.data.io import loader_worker_init

    saved = cv2.getNumThreads()
    try:
        loader_worker_init(0)  # what each DataLoader worker process runs first
        assert cv2.getNumThreads() == 1
    finally:
        cv2.setNumThreads(saved)


def test_train_restores_the_global_rngs_and_the_cuda_backend_switches(tmp_path):
    """Regression: train() reseeded the global generators (torch, NumPy, Python) with train.seed and left cuDNN
    autotuning and TF32 on. The switches are set by configure_cuda, which training calls on CUDA only; here it is
    called from inside the run so that the CPU shows what a GPU run does."""
    from scrnet.engine import trainer as trainer_module

    root = generate_synthetic(tmp_path / "d", num_train=2, num_val=1, size=(64, 64), seed=0)
    cfg = load_config(None, [f"data.root={root}", "data.type=folder", "model.name=scrnet_r18", "model.num_classes=9",
                             "model.channels=16", "train.batch_size=2", "train.num_workers=0",
                             "data.train.crop_size=[64,64]", "data.train.scale=[64,64]", "train.max_iters=1",
                             "train.val_interval=0", "train.tensorboard=false"])
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    expected = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(1234)
    np.random.seed(1234)
    random.seed(1234)
    settings = runtime.current_backend_settings()
    original = trainer_module.Trainer.__init__

    def init_as_on_cuda(self, *args, **kwargs):
        original(self, *args, **kwargs)
        runtime.configure_cuda(benchmark=not settings.cudnn_benchmark, tf32=not settings.cudnn_tf32)

    trainer_module.Trainer.__init__ = init_as_on_cuda
    try:
        trainer_module.train(cfg, tmp_path / "w", progress=False)
    finally:
        trainer_module.Trainer.__init__ = original
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]
    assert runtime.current_backend_settings() == settings


def test_cleanup_leaves_a_process_group_the_caller_created(monkeypatch, tmp_path):
    """Regression: eval and train destroyed the process group at the end, also one their caller had made."""
    import torch.distributed as dist

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        monkeypatch.setenv("WORLD_SIZE", "2")  # as under torchrun: the library joins the group it finds
        monkeypatch.setenv("RANK", "0")
        info = distributed.init_distributed("cpu")
        assert info.enabled and not info.owns_group
        distributed.cleanup(info)
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


def test_export_checkpoint_works_on_a_copy_of_the_callers_model(tmp_path):
    """Regression: export folded BatchNorm into the caller's own model (LoadedCheckpoint.model), in place."""
    pytest.importorskip("onnx")
    from scrnet.deploy.export import export_checkpoint

    torch.manual_seed(0)
    model = scrnet.create_model("scrnet_r18", num_classes=3, channels=16)
    path = scrnet.save_checkpoint(model, tmp_path / "m.pth", ["a", "b", "c"], [(0, 0, 0)] * 3)
    loaded = scrnet.load_checkpoint(path)
    before = {k: v.clone() for k, v in loaded.model.state_dict().items()}
    result = export_checkpoint(loaded, tmp_path / "m.onnx", size=(64, 64))
    assert result.fused_pairs > 0
    after = loaded.model.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert not hasattr(loaded.model, "fused_pairs")


def test_export_onnx_puts_the_model_back_in_the_mode_it_had(tmp_path):
    pytest.importorskip("onnx")
    from scrnet.deploy.export import export_onnx

    model = scrnet.create_model("scrnet_r18", num_classes=3, channels=16).train()
    export_onnx(model, tmp_path / "m.onnx", size=(64, 64))
    assert model.training


def test_the_export_sampler_is_per_thread():
    """Regression: the ONNX sampler switch was a module-level global, so an export in one thread changed how an
    export running in another thread wrote its sampling."""
    from scrnet.models import sampling

    inside, seen = threading.Event(), {}

    def other_thread():
        inside.wait(10)
        seen["other"] = sampling._export_sampler.get()

    thread = threading.Thread(target=other_thread)
    thread.start()
    with sampling.export_sampler("gather"):
        seen["own"] = sampling._export_sampler.get()
        inside.set()
        thread.join(10)
    assert seen == {"own": "gather", "other": "gridsample"}
    assert sampling._export_sampler.get() == "gridsample"


def test_hiding_onnxruntimes_python_logs_leaves_the_logging_set_up_as_it_was(caplog):
    """Regression: INT8 calibration set the root logger to ERROR (every other record of the process was dropped
    meanwhile) and onnxruntime's C++ severity to a fixed 2 afterwards instead of the caller's value."""
    pytest.importorskip("onnxruntime")
    from scrnet.deploy.quantize import onnxruntime_python_logs_hidden

    root = logging.getLogger()
    state = root.level, list(root.filters), list(root.handlers), logging.getLogger("onnxruntime").level
    with caplog.at_level(logging.WARNING):
        with onnxruntime_python_logs_hidden():
            logging.getLogger("mine").warning("the caller's record")
            logging.getLogger("onnxruntime.quantization.quantize").warning("the tools' advice")
        assert [r.getMessage() for r in caplog.records] == ["the caller's record"]
    assert (root.level, list(root.filters), list(root.handlers), logging.getLogger("onnxruntime").level) == state
