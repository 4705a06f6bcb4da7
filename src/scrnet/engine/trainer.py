"""The training loop: one process (CPU or one GPU) or many under torchrun, iteration-based, exactly resumable.

Order of one iteration: forward (autocast when asked) -> loss -> non-finite guard (agreed by all ranks) ->
backward -> optimiser step -> scheduler step; then, at their intervals, a metric-log line, validation (best
checkpoint kept) and a periodic checkpoint. SIGINT/SIGTERM finish the current iteration, write a checkpoint and
stop all ranks; ``--resume`` continues from the newest checkpoint exactly (model, optimiser, scheduler, scaler,
iteration, sampler position, RNG states).
"""

import json
import math
import re
import signal
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from ..checkpoints import inference_state
from ..config import Config, ConfigError, config_to_yaml
from ..data.build import open_source
from ..data.dataset import SegmentationDataset
from ..data.io import DataError
from ..data.sampler import IterationBatchSampler
from ..data.source import palette_table
from ..data.transforms import EvalTransform, TrainTransform
from ..evaluation.evaluate import evaluate
from ..evaluation.inference import infer_whole
from ..models import SCRNet, build_model
from . import checkpoint as ckpt
from .distributed import DistInfo, all_gather_floats, barrier, broadcast_flag, cleanup, init_distributed
from .losses import SegmentationLoss, total_loss
from .schedule import build_optimizer, build_scheduler


class TrainingAborted(RuntimeError):
    """Training stopped on an unrecoverable condition (e.g. repeated non-finite losses); the message says why."""


@dataclass
class TrainResult:
    iteration: int
    best_miou: float | None
    best_iteration: int | None
    work_dir: Path
    stopped_by_signal: int | None = None  # the signal number when SIGINT/SIGTERM stopped the run
    is_main: bool = True  # rank 0 (or a single process): the one that reports


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device is 'cuda' but no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def autocast_for(amp: str, device: torch.device):
    if amp == "none":
        return nullcontext()
    if amp == "fp16" and device.type != "cuda":
        raise ConfigError("train.amp=fp16 needs CUDA; on CPU use train.amp=bf16 or none")
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def open_data(cfg: Config):
    """Open and check both splits before anything else runs; the class count must match the model's."""
    sources = []
    for split in (cfg.data.train_split, cfg.data.val_split):
        source = open_source(cfg.data.type, cfg.data.root, split)
        try:
            source.raise_problems()
        except DataError as exc:
            raise ConfigError(f"data (data.type={cfg.data.type}, data.root={cfg.data.root}): {exc}") from None
        sources.append(source)
    if cfg.model.num_classes != sources[0].num_classes:
        raise ConfigError(f"model.num_classes is {cfg.model.num_classes} but the {cfg.data.type} data set at "
                          f"{cfg.data.root} has {sources[0].num_classes} classes; set model.num_classes="
                          f"{sources[0].num_classes}")
    return sources


class _StopFlag:
    """Records SIGINT/SIGTERM so the loop can finish the iteration, save and stop; restores the old handlers."""

    def __init__(self):
        self.signum: int | None = None
        self._old = {}

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame):
        self.signum = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


class Trainer:
    def __init__(self, cfg: Config, work_dir: str | Path, resume: bool = False, progress: bool | None = None):
        self.cfg = cfg
        self.work_dir = Path(work_dir)
        self.device = resolve_device(cfg.train.device)
        autocast_for(cfg.train.amp, self.device)  # checks train.amp against the device before anything runs
        train_source, val_source = open_data(cfg)
        self.dist: DistInfo = init_distributed(self.device.type)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        torch.manual_seed(cfg.train.seed)  # identical initial weights on every rank
        self.model: SCRNet = build_model(cfg.model)
        norm = self.model.normalization
        cfg.data.mean = cfg.data.mean or list(norm.mean)
        cfg.data.std = cfg.data.std or list(norm.std)
        self.class_names, self.palette = train_source.class_names, train_source.palette
        self.train_set = SegmentationDataset(train_source, TrainTransform(cfg.data.train, cfg.data.mean, cfg.data.std),
                                             seed=cfg.train.seed)
        self.val_set = SegmentationDataset(val_source, EvalTransform(cfg.data.eval, cfg.data.mean, cfg.data.std))
        if self.dist.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "config.yaml").write_text(config_to_yaml(cfg))  # before the first step
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.optimizer = build_optimizer(self.model, cfg.train.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.train.optim, cfg.train.max_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.criterion = SegmentationLoss(cfg.train.loss, cfg.model.num_classes).to(self.device)
        self.iteration = 0
        self.best: dict = {"miou": None, "iteration": None}
        self.resumed_from: Path | None = None
        if resume:
            self._resume()
        self.net = self.model
        if self.dist.enabled:
            if self.device.type == "cuda":
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.progress = self.dist.is_main and progress is not False
        self.log_file = self.work_dir / "metrics.jsonl"
        self.tb = self._tensorboard()

    # ----------------------------------------------------------------------------------------------- state
    def _resume(self) -> None:
        path = ckpt.latest_checkpoint(self.work_dir)
        if path is None:
            if self.dist.is_main:
                print(f"--resume: no checkpoint in {self.work_dir / 'checkpoints'}; starting from iteration 0")
            return
        state = ckpt.load(path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.iteration = state["iteration"]
        self.best = dict(state["best"])
        ckpt.set_rng_state(state["rng"])
        self.resumed_from = path
        if self.dist.is_main:
            print(f"resumed from {path} at iteration {self.iteration}")

    def state(self) -> dict:
        return {
            **inference_state(self.model, self.cfg, self.class_names, self.palette),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "best": dict(self.best),
            "rng": ckpt.rng_state(),
        }

    def save(self, best: bool = False) -> Path | None:
        """Checkpoint the current state (rank 0 only); refuses non-finite weights."""
        if not self.dist.is_main:
            return None
        bad = [n for n, p in self.model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
        if bad:
            raise TrainingAborted(f"refusing to write a checkpoint with non-finite weights ({bad[:3]}) at iteration "
                                  f"{self.iteration}")
        state = self.state()
        path = ckpt.checkpoint_path(self.work_dir, self.iteration)
        ckpt.atomic_save(state, path)
        ckpt.prune(self.work_dir, self.cfg.train.keep_last)
        if best:
            ckpt.atomic_save(state, self.work_dir / "checkpoints" / "best.pth")
        return path

    # --------------------------------------------------------------------------------------------- logging
    def _tensorboard(self):
        if not (self.dist.is_main and self.cfg.train.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the `log` extra is not installed
            return None
        return SummaryWriter(str(self.work_dir / "tensorboard"))

    def log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        with self.log_file.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for key, value in record.items():
                if key != "iter" and isinstance(value, (int, float)) and value is not None:
                    self.tb.add_scalar(key, value, record["iter"])

    # ---------------------------------------------------------------------------------------------- loop
    def loader(self) -> torch.utils.data.DataLoader:
        t = self.cfg.train
        sampler = IterationBatchSampler(len(self.train_set), t.batch_size, self.dist.rank, self.dist.world_size,
                                        t.seed, start_iter=self.iteration, max_iters=t.max_iters)
        return torch.utils.data.DataLoader(
            self.train_set, batch_sampler=sampler, num_workers=t.num_workers, pin_memory=self.device.type == "cuda",
            persistent_workers=False, generator=torch.Generator())  # own generator: leaves the global RNG alone

    def validate(self) -> float:
        result = evaluate(self.model, self.val_set, self.device, self.cfg.eval, tta=False, rank=self.dist.rank,
                          world_size=self.dist.world_size, autocast=autocast_for(self.cfg.train.amp, self.device),
                          channels_last=self.cfg.train.channels_last)
        summary = result.to_json()
        self.log({"iter": self.iteration, "val_miou": summary["miou"], "val_aacc": summary["aacc"],
                  "val_mbiou": summary["mbiou"], "val_iou": summary["iou"]})
        if self.tb is not None:
            self._log_predictions()
        return summary["miou"]

    @torch.no_grad()
    def _log_predictions(self, count: int = 2) -> None:
        """A few validation predictions next to their ground truth, in the data set's palette, to TensorBoard."""
        palette = torch.from_numpy(palette_table(self.palette))
        self.model.eval()
        for i in range(min(count, len(self.val_set))):
            item = self.val_set[i]
            target = item["mask"]
            with autocast_for(self.cfg.train.amp, self.device):
                logits = infer_whole(self.model, item["image"].unsqueeze(0).to(self.device), tuple(target.shape))
            pred = logits.argmax(1)[0].cpu()
            both = torch.cat([palette[target.clamp(0, 255)], palette[pred]], dim=1)  # ground truth | prediction
            self.tb.add_image(f"val/{i}", both.numpy(), self.iteration, dataformats="HWC")
        self.model.train()

    def step(self, batch: dict) -> float | None:
        """One iteration; returns the loss, or None when it was not finite (the update is skipped)."""
        image = batch["image"].to(self.device, non_blocking=True)
        if self.cfg.train.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        target = batch["mask"].to(self.device, non_blocking=True)
        with autocast_for(self.cfg.train.amp, self.device):
            outputs = self.net(image)
            loss = total_loss(self.criterion, outputs, target, self.cfg.model.aux_weight)
        nonfinite = broadcast_flag(not bool(torch.isfinite(loss.detach())), self.dist, self.device)
        self.optimizer.zero_grad(set_to_none=True)
        if nonfinite:
            return None
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return float(loss.detach())

    def train(self, until: int | None = None) -> TrainResult:
        """Train to ``train.max_iters``; with ``until``, stop after that iteration with a checkpoint, as a
        preempted job would (a later ``--resume`` run continues exactly)."""
        t = self.cfg.train
        self.net.train()
        bar = tqdm(total=t.max_iters, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True,
                   disable=None if self.progress else True)
        nonfinite_run, window, start = 0, [], time.perf_counter()
        start_iter = self.iteration
        stop = _StopFlag()
        with stop:
            for batch in self.loader():
                loss = self.step(batch)
                self.iteration += 1
                with warnings.catch_warnings():  # a skipped update still advances the schedule, which torch
                    warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
                    self.scheduler.step()  # would otherwise report as calling the two in the wrong order
                if loss is None:
                    nonfinite_run += 1
                    if self.dist.is_main:
                        tqdm.write(f"warning: non-finite loss at iteration {self.iteration}; update skipped "
                                   f"({nonfinite_run} in a row)", file=sys.stderr)
                    if nonfinite_run >= t.max_nonfinite:
                        last = ckpt.latest_checkpoint(self.work_dir)
                        raise TrainingAborted(
                            f"{nonfinite_run} non-finite losses in a row at iteration {self.iteration}; last good "
                            f"checkpoint: {last or 'none'}; lower train.optim.lr or check the data")
                else:
                    nonfinite_run = 0
                    window.append(loss)
                lr = self.optimizer.param_groups[0]["lr"]
                bar.update(1)
                if loss is not None:
                    bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", refresh=False)
                if self.iteration % t.log_interval == 0 or self.iteration == t.max_iters:
                    elapsed = time.perf_counter() - start
                    per_iter = elapsed / max(self.iteration - start_iter, 1)
                    self.log({"iter": self.iteration, "loss": sum(window) / len(window) if window else None,
                              "lr": lr, "s_per_iter": per_iter, "eta_s": per_iter * (t.max_iters - self.iteration)})
                    window = []
                is_last = self.iteration == t.max_iters
                improved = False
                if (t.val_interval and self.iteration % t.val_interval == 0) or is_last:
                    miou = self.validate()
                    improved = self.best["miou"] is None or miou > self.best["miou"]
                    if improved:
                        self.best = {"miou": miou, "iteration": self.iteration}
                    if self.dist.is_main:
                        tqdm.write(f"iteration {self.iteration}: val mIoU {miou:.4f} (best {self.best['miou']:.4f} "
                                   f"at {self.best['iteration']})")
                stopping = broadcast_flag(stop.signum is not None, self.dist, self.device)
                stopping = stopping or self.iteration == until
                if improved or is_last or stopping or self.iteration % t.checkpoint_interval == 0:
                    self.save(best=improved)
                if stopping:
                    break
        bar.close()
        self._check_ranks_agree()
        if self.tb is not None:
            self.tb.close()
        barrier(self.dist)
        cleanup(self.dist)
        return TrainResult(self.iteration, self.best["miou"], self.best["iteration"], self.work_dir, stop.signum,
                           self.dist.is_main)

    def _check_ranks_agree(self) -> None:
        """Every rank must end with the same weights; the per-rank checksums go to the metric log."""
        with torch.no_grad():
            flat = [p.double().sum().item() for p in self.model.parameters()]
            checksum = [math.fsum(flat), math.fsum(abs(v) for v in flat)]
        gathered = all_gather_floats(checksum, self.dist, self.device)
        self.log({"iter": self.iteration, "rank_checksums": gathered})
        if any(g != gathered[0] for g in gathered):
            raise TrainingAborted(f"ranks ended with different weights: checksums {gathered}")


def train(cfg: Config, work_dir: str | Path, resume: bool = False, progress: bool | None = None,
          until: int | None = None) -> TrainResult:
    return Trainer(cfg, work_dir, resume, progress).train(until)
