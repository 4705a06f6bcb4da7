"""The training loop: one process (CPU or one GPU) or many under torchrun, iteration-based, exactly resumable.

Order of one iteration: uint8 batch to the device (pinned, non-blocking) -> normalise there -> forward (autocast
when asked) -> loss -> backward -> one combined check, agreed by all ranks in a single all-reduce and read back in a
single host synchronisation: was the loss finite, and did any rank receive SIGINT/SIGTERM -> optimiser step (skipped
when the loss was not finite) -> scheduler step; then, at their intervals, a metric-log line, validation (best
checkpoint kept) and a periodic checkpoint. The running loss stays on the device until a log line needs it.

SIGINT/SIGTERM: the current iteration finishes, validation and the best-checkpoint bookkeeping are skipped (a
scheduler's kill follows ~30 s after SIGTERM), one checkpoint is written and all ranks stop. A checkpoint that
cannot be written stops every rank within seconds, with one line naming the path. ``--resume`` continues from the
newest checkpoint exactly (model, optimiser, scheduler, scaler, iteration, sampler position, RNG states, each
rank's CUDA generator); ranks that would resume from different iterations abort.
"""

import contextlib
import math
import re
import signal
import sys
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from .. import checkpoint_io as ckpt
from ..config import Config, ConfigError, config_to_yaml, normalization, resolve
from ..data.build import open_checked
from ..data.dataset import SegmentationDataset
from ..data.io import batches, loader_worker_init
from ..data.sampler import IterationBatchSampler
from ..data.source import palette_table
from ..data.transforms import EvalTransform, TrainTransform
from ..distributed import (
    DistInfo,
    all_gather_floats,
    all_gather_objects,
    any_flags,
    barrier,
    cleanup,
    init_distributed,
)
from ..errors import RequestError, ScrnetError
from ..evaluation.evaluate import evaluate
from ..evaluation.inference import infer_whole
from ..loading import inference_state
from ..models import SCRNet, build_model
from ..provenance import record_environment
from ..runtime import autocast_for, configure_cuda, preserved_backend_settings, resolve_device
from . import training_log
from .losses import SegmentationLoss, total_loss
from .rng import own_cuda_rng_state, preserved_rng, rng_state, set_rng_state
from .schedule import build_optimizer, build_scheduler


class TrainingAborted(ScrnetError, RuntimeError):
    """Training stopped on an unrecoverable condition (e.g. repeated non-finite losses); the message says why."""


class _NonfiniteTally:
    """The non-finite-loss flags of ``train.check_interval > 1``, counted on the device between two reads: updates
    skipped, the current run of consecutive ones and the longest run since the last read."""

    def __init__(self, device: torch.device):
        self.counts = torch.zeros(3, device=device)  # skipped, longest run, current run

    def add(self, bad: torch.Tensor) -> None:
        skipped, worst, run = self.counts.unbind()
        run = (run + 1) * bad
        self.counts = torch.stack([skipped + bad, torch.maximum(worst, run), run])

    def read(self, stop_requested: bool, info: DistInfo) -> tuple[int, int, int, bool]:
        """``(skipped, longest run, current run, stop)``, stop agreed by all ranks; one all-reduce, one transfer.
        Resets the counts of the window (the current run carries over)."""
        stop = torch.tensor([float(stop_requested)], device=self.counts.device)
        if info.enabled:
            torch.distributed.all_reduce(stop, op=torch.distributed.ReduceOp.MAX)
        skipped, worst, run, stop_any = torch.cat([self.counts, stop]).tolist()
        self.counts = torch.tensor([0.0, run, run], device=self.counts.device)
        return int(skipped), int(worst), int(run), stop_any > 0


@dataclass
class TrainResult:
    iteration: int
    best_miou: float | None
    best_iteration: int | None
    work_dir: Path
    stopped_by_signal: int | None = None  # the signal number when SIGINT/SIGTERM stopped the run
    is_main: bool = True  # rank 0 (or a single process): the one that reports


__all__ = ["Trainer", "TrainingAborted", "TrainResult", "train"]


def open_data(cfg: Config):
    """Open and check both splits before anything else runs; the class count must match the model's."""
    sources = []
    for split in (cfg.data.train_split, cfg.data.val_split):
        sources.append(open_checked(cfg.data.type, cfg.data.root, split))
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
        check_work_dir(self.work_dir, resume)
        self.device = resolve_device(cfg.train.device)
        autocast_for(cfg.train.amp, self.device)  # checks train.amp against the device before anything runs
        train_source, val_source = open_data(cfg)
        self.dist: DistInfo = init_distributed(self.device.type, cfg.train.dist_timeout_s)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        per_rank, rest = divmod(cfg.train.batch_size, self.dist.world_size)
        if not rest and per_rank % cfg.train.accumulate:
            raise ConfigError(f"train.batch_size {cfg.train.batch_size} over {self.dist.world_size} processes is "
                              f"{per_rank} images each, which do not split into train.accumulate="
                              f"{cfg.train.accumulate} equal micro-batches")
        if self.device.type == "cuda":
            configure_cuda(cfg.train.cudnn_benchmark, cfg.train.tf32)
        torch.manual_seed(cfg.train.seed)  # identical initial weights (and later draws) on every rank
        per_module = cfg.train.init_rng == "per_module"  # else drawn from the stream just seeded
        self.model: SCRNet = build_model(cfg.model, init_seed=cfg.train.seed if per_module else None)
        self.normalize = normalization(resolve(cfg))  # stored in config.yaml and every checkpoint
        self.memory_format = torch.channels_last if cfg.train.channels_last else torch.contiguous_format
        self.class_names, self.palette = train_source.class_names, train_source.palette
        self.train_set = SegmentationDataset(train_source, TrainTransform(cfg.data.train), seed=cfg.train.seed)
        self.val_set = SegmentationDataset(val_source, EvalTransform(cfg.data.eval))
        if self.dist.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "config.yaml").write_text(config_to_yaml(cfg))  # before the first step
        self.model.to(self.device)
        if cfg.train.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.deferred = cfg.train.check_interval > 1  # flags read every check_interval steps, updates skipped on device
        self.optimizer = build_optimizer(self.model, cfg.train.optim, fused=self.deferred)
        self.scheduler = build_scheduler(self.optimizer, cfg.train.optim, cfg.train.max_iters)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.amp == "fp16")
        self.criterion = SegmentationLoss(cfg.train.loss, cfg.model.num_classes).to(self.device)
        self.iteration = 0
        self.best: dict = {"miou": None, "iteration": None}
        self.resumed_from: Path | None = None
        self.run_id = uuid.uuid4().hex  # a resumed run takes its checkpoint's; only its own checkpoints are pruned
        self._unreadable: list[Path] = []
        if resume:
            self._resume()
        self._check_resume_agrees()  # every rank has read its checkpoint: the unreadable ones can move aside
        if self.dist.is_main:
            for path in self._unreadable:
                path.rename(path.with_name(path.name + ".unreadable"))
                print(f"--resume: moved the unreadable {path.name} aside as {path.name}.unreadable", file=sys.stderr)
        self.net = self.model
        if self.dist.enabled:
            sync_bn = self.device.type == "cuda"
            if sync_bn:
                self.net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(self.net)
            # SyncBN already keeps the running statistics equal on every rank: no per-step buffer broadcast
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                broadcast_buffers=not sync_bn)
        if cfg.train.compile != "none":  # the network only (the loss stays eager); checkpoints hold self.model
            self.net = torch.compile(self.net, mode=cfg.train.compile, dynamic=False)
        self.progress = self.dist.is_main and progress is not False
        self.log_file = self.work_dir / training_log.LOG_FILE
        if self.dist.is_main:
            if resume:  # lines of the attempt cut short after this iteration are replaced
                training_log.mark_resume(self.log_file, self.iteration)
            record_environment(self.work_dir, self.iteration, self.device)  # versions, source, threads, device
        self.tb = self._tensorboard(resume)

    # ----------------------------------------------------------------------------------------------- state
    def _resume(self) -> None:
        """Continue from the newest checkpoint that loads: a newer one that is torn, empty or corrupted (a crash
        mid-write on a file system without atomic rename, a full disk) is skipped with a warning naming it, and
        later renamed to ``*.pth.unreadable`` (kept, but no longer counted as a checkpoint by pruning)."""
        with warnings.catch_warnings(record=True) as skipped:
            warnings.simplefilter("always")
            try:
                found = ckpt.newest_readable(self.work_dir)
            except ckpt.CheckpointError as exc:
                raise TrainingAborted(f"--resume: {exc}") from None
        if found is not None:  # every checkpoint newer than the one that loaded was skipped as unreadable
            listed = ckpt.list_checkpoints(self.work_dir)
            start = next(it for it, p in listed if p == found[0])
            self._unreadable = [p for it, p in listed if it > start]
        if self.dist.is_main:
            for w in skipped:
                print(f"--resume: warning: {w.message}", file=sys.stderr)
        if found is None:
            if self.dist.is_main:
                print(f"--resume: no checkpoint in {self.work_dir / 'checkpoints'}; starting from iteration 0")
            return
        path, state = found
        self._check_same_network(path, state)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        note = load_scaler_state(self.scaler, state["scaler"], self.cfg.train.amp)
        if note and self.dist.is_main:
            print(f"--resume: {note}", file=sys.stderr)
        self.iteration = state["iteration"]
        self.best = dict(state["best"])
        if isinstance(state.get("run_id"), str):  # checkpoints written before run ids: pruned never, kept as they are
            self.run_id = state["run_id"]
        set_rng_state(state["rng"], self.dist.rank, self.device)
        self.resumed_from = path
        if self.dist.is_main:
            print(f"resumed from {path} at iteration {self.iteration}")

    def _check_same_network(self, path: Path, state: dict) -> None:
        """The network this run builds must be the one the checkpoint trained: a model key that differs (an override
        left out, or a default that changed between scrnet versions) aborts with one line naming each key and both
        values, instead of a state-dict size error or, for keys without weights, a silently different network."""
        from ..config import config_from_dict, config_to_dict
        from ..overrides import flatten

        if "config" not in state:
            return
        stored = flatten(config_to_dict(config_from_dict(state["config"], origin=f"checkpoint {path}"))["model"])
        current = flatten(config_to_dict(self.cfg)["model"])
        ignored = {"backbone_weights"}  # only the initialisation, which the checkpoint's weights replace
        diff = [k for k in sorted(set(stored) | set(current)) if k not in ignored and stored.get(k) != current.get(k)]
        if diff:
            pairs = ", ".join(f"model.{k}: checkpoint {stored.get(k)!r}, this run {current.get(k)!r}" for k in diff)
            fix = " ".join(f"model.{k}={stored.get(k)}" for k in diff)
            raise TrainingAborted(f"--resume: {path} trained another network ({pairs}); to continue it, pass {fix}")

    def _check_resume_agrees(self) -> None:
        """Every rank must start from the same iteration (e.g. each read its own copy of the work dir)."""
        starts = all_gather_objects((self.iteration, str(self.resumed_from) if self.resumed_from else None),
                                    self.dist)
        if len({it for it, _ in starts}) > 1:
            detail = ", ".join(f"rank {r}: iteration {it} ({p or 'no checkpoint'})" for r, (it, p) in enumerate(starts))
            raise TrainingAborted(f"ranks would resume from different iterations ({detail}); give every rank the "
                                  f"same work dir")

    def state(self, rng: dict | None = None) -> dict:
        return {
            **inference_state(self.model, self.cfg, self.class_names, self.palette),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "iteration": self.iteration,
            "best": dict(self.best),
            "rng": rng if rng is not None else rng_state(),
            "run_id": self.run_id,
        }

    def save(self, best: bool = False) -> Path | None:
        """Checkpoint the current state. Collective: every rank calls it (each rank's CUDA generator state is
        gathered into the file); rank 0 writes. Refuses non-finite weights. When rank 0 cannot write (disk full,
        permission), every rank raises :class:`TrainingAborted` at once, naming the path, instead of the others
        waiting for a collective that never comes; earlier checkpoints are left as they were."""
        rng = rng_state()
        cuda_states = all_gather_objects(own_cuda_rng_state(self.device), self.dist)
        if any(c is not None for c in cuda_states):
            rng["cuda_per_rank"] = cuda_states
        error, path = None, None
        if self.dist.is_main:
            try:
                path = self._write(best, rng)
            except TrainingAborted as exc:
                error = str(exc)
        errors = all_gather_objects(error, self.dist)
        if errors[0] is not None:
            raise TrainingAborted(errors[0] if self.dist.is_main else f"rank 0 failed to write a checkpoint: "
                                                                     f"{errors[0]}")
        return path

    def _write(self, best: bool, rng: dict) -> Path:
        bad = [n for n, p in self.model.state_dict().items() if p.is_floating_point() and not torch.isfinite(p).all()]
        if bad:
            raise TrainingAborted(f"refusing to write a checkpoint with non-finite weights ({bad[:3]}) at iteration "
                                  f"{self.iteration}")
        state = self.state(rng)
        path = ckpt.checkpoint_path(self.work_dir, self.iteration)
        try:
            ckpt.atomic_save(state, path)
            ckpt.record_written(self.work_dir, self.run_id, path)
            ckpt.prune(self.work_dir, self.cfg.train.keep_last, self.run_id)
            if best:
                ckpt.atomic_save(state, self.work_dir / "checkpoints" / "best.pth")
        except OSError as exc:
            raise TrainingAborted(f"cannot write checkpoint {exc.filename or path}: {exc.strerror or exc}; the "
                                  f"earlier checkpoints in {path.parent} are intact") from None
        return path

    # --------------------------------------------------------------------------------------------- logging
    def _tensorboard(self, resume: bool):
        if not (self.dist.is_main and self.cfg.train.tensorboard):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # the `log` extra is not installed
            return None
        # a resumed run drops the events of the attempt cut short from the step it trains again (TensorBoard's own
        # counterpart of the marker in metrics.jsonl)
        return SummaryWriter(str(self.work_dir / "tensorboard"),
                             purge_step=self.iteration + 1 if resume else None)

    def log(self, record: dict) -> None:
        if not self.dist.is_main:
            return
        training_log.append(self.log_file, record)
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
            # its own generator: leaves the global RNG alone
            persistent_workers=False, generator=torch.Generator(), worker_init_fn=loader_worker_init)

    def validate(self) -> float:
        result = evaluate(self.model, self.val_set, self.device, self.cfg.eval, self.normalize, tta=False,
                          rank=self.dist.rank, world_size=self.dist.world_size,
                          autocast=autocast_for(self.cfg.train.amp, self.device),
                          channels_last=self.cfg.train.channels_last,
                          num_workers=min(self.cfg.train.num_workers, 4),
                          boundary_metrics=self.cfg.train.val_boundary)
        summary = result.to_json()
        record = {"iter": self.iteration, "val_miou": summary["miou"], "val_aacc": summary["aacc"],
                  "val_mbiou": summary["mbiou"], "val_iou": summary["iou"]}
        if "boundary_iou" in summary:
            record["val_boundary_iou"] = summary["boundary_iou"]["mean"]
            record.update({f"val_boundary_f{t}": block["mean"] for t, block in summary["boundary_f"].items()})
        self.log(record)
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
            target = item["mask"].long()
            with autocast_for(self.cfg.train.amp, self.device):
                image = self.normalize(item["image"].to(self.device), self.memory_format)
                logits = infer_whole(self.model, image, tuple(target.shape))
            pred = logits.argmax(1)[0].cpu()
            both = torch.cat([palette[target.clamp(0, 255)], palette[pred]], dim=1)  # ground truth | prediction
            self.tb.add_image(f"val/{i}", both.numpy(), self.iteration, dataformats="HWC")
        self.model.train()

    def step(self, batch: dict, stop_requested: bool = False) -> tuple[torch.Tensor | None, bool | torch.Tensor]:
        """One iteration (one optimiser step): ``(loss, stopping)``. ``loss`` is the detached loss tensor on the
        device, or None when it was not finite on some rank (the update is then skipped everywhere); ``stopping``
        is true on every rank when any rank was asked to stop. Both are agreed in one all-reduce and read in one
        host synchronisation, after the backward pass has been queued. With ``train.check_interval > 1`` nothing
        is read: ``(loss, flag)``, the loss as computed and its non-finite flag on the device (the update skipped
        there when set); the loop reads the flags every ``check_interval`` steps.

        With ``train.accumulate = A > 1`` the batch is run as ``A`` micro-batches, one after the other, each loss
        weighted by its share of the batch's valid pixels (class-weighted when class weights are set), so that the
        summed gradients are those of the whole batch's loss where BatchNorm is not involved (BatchNorm normalises
        each micro-batch alone; OHEM picks the hard pixels of each micro-batch with its share of the floor). Under
        DDP the gradients are all-reduced once, after the last micro-batch."""
        t = self.cfg.train
        parts = t.accumulate
        share = batch["mask"].shape[0] / parts / t.batch_size  # of the global batch, per micro-batch
        targets = [m.to(self.device, non_blocking=True) for m in batch["mask"].chunk(parts)]
        images = batch["image"].chunk(parts)
        if parts > 1:
            weights = [self.criterion.pixel_weight(target) for target in targets]
            total = torch.stack(weights).sum()
            scales = [torch.where(total > 0, w / total.clamp(min=1e-12), torch.zeros_like(w)) for w in weights]
        self.optimizer.zero_grad(set_to_none=True)
        loss = None
        for j, (images_j, target) in enumerate(zip(images, targets)):
            image = self.normalize(images_j.to(self.device, non_blocking=True), self.memory_format)
            defer = j < parts - 1 and isinstance(self.net, torch.nn.parallel.DistributedDataParallel)
            with self.net.no_sync() if defer else contextlib.nullcontext():
                with autocast_for(t.amp, self.device):
                    outputs = self.net(image)
                    part = total_loss(self.criterion, outputs, target, share)
                if parts > 1:
                    part = part * scales[j]
                self.scaler.scale(part).backward()
            loss = part.detach() if loss is None else loss + part.detach()
        if self.deferred:
            return loss, self._step_on_device(loss)
        flags = torch.stack([~torch.isfinite(loss), torch.tensor(stop_requested, device=self.device)]).float()
        nonfinite, stopping = any_flags(flags, self.dist)
        if nonfinite:
            self.optimizer.zero_grad(set_to_none=True)
            return None, stopping
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss, stopping

    def _step_on_device(self, loss: torch.Tensor) -> torch.Tensor:
        """The optimiser step of ``train.check_interval > 1``, without reading anything back: the loss's non-finite
        flag (the maximum over ranks) goes to the fused optimiser as its ``found_inf``, which then leaves weights,
        moments and step count as they were; under fp16 AMP the scaler's own found-inf does that (a non-finite loss
        gives non-finite gradients) and lowers the scale. Returns the flag (0/1, float, on the device)."""
        bad = (~torch.isfinite(loss)).float()
        if self.dist.enabled:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if not self.scaler.is_enabled():
            self.optimizer.found_inf = bad  # read by torch's fused step, as GradScaler hands it over
        try:
            self.scaler.step(self.optimizer)
        finally:
            self.optimizer.__dict__.pop("found_inf", None)
        self.scaler.update()
        return bad

    def train(self, until: int | None = None) -> TrainResult:
        """Train to ``train.max_iters``; with ``until``, stop after that iteration with a checkpoint, as a
        preempted job would (a later ``--resume`` run continues exactly)."""
        t = self.cfg.train
        self.net.train()
        bar = tqdm(total=t.max_iters, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True,
                   disable=None if self.progress else True)
        nonfinite_run, loss_sum, loss_count, start = 0, None, 0, time.perf_counter()
        tally = _NonfiniteTally(self.device) if self.deferred else None
        start_iter = self.iteration
        stop = _StopFlag()
        with stop:
            for batch in batches(self.loader()):
                loss, stopping = self.step(batch, stop.signum is not None)
                self.iteration += 1
                with warnings.catch_warnings():  # a skipped update still advances the schedule, which torch
                    warnings.filterwarnings("ignore", re.escape("Detected call of `lr_scheduler.step()` before"))
                    self.scheduler.step()  # would otherwise report as calling the two in the wrong order
                if tally is not None:  # train.check_interval > 1: flags on the device, read at the checks
                    bad = stopping
                    tally.add(bad)
                    loss = torch.where(bad > 0, torch.zeros_like(loss), loss)  # skipped: not in the mean
                    loss_sum = loss if loss_sum is None else loss_sum + loss
                    loss_count = loss_count + (1 - bad)  # a tensor from here on, until the log line reads it
                    stopping = self._check_due(until) and self._read_tally(tally, stop.signum is not None)
                elif loss is None:
                    nonfinite_run += 1
                    if self.dist.is_main:
                        tqdm.write(f"warning: non-finite loss at iteration {self.iteration}; update skipped "
                                   f"({nonfinite_run} in a row)", file=sys.stderr)
                    if nonfinite_run >= t.max_nonfinite:
                        self._abort_nonfinite(nonfinite_run)
                else:
                    nonfinite_run = 0
                    loss_sum = loss if loss_sum is None else loss_sum + loss  # stays on the device
                    loss_count += 1
                lr = self.optimizer.param_groups[0]["lr"]
                bar.update(1)
                if self.iteration % t.log_interval == 0 or self.iteration == t.max_iters:
                    elapsed = time.perf_counter() - start
                    per_iter = elapsed / max(self.iteration - start_iter, 1)
                    count = float(loss_count)
                    mean_loss = float(loss_sum) / count if count else None
                    self.log({"iter": self.iteration, "loss": mean_loss,
                              "lr": lr, "s_per_iter": per_iter, "eta_s": per_iter * (t.max_iters - self.iteration)})
                    if mean_loss is not None:
                        bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{lr:.2e}", refresh=False)
                    loss_sum, loss_count = None, 0
                is_last = self.iteration == t.max_iters
                improved = False
                # on a stop request: no validation and no best-checkpoint bookkeeping, just one checkpoint
                if not stopping and ((t.val_interval and self.iteration % t.val_interval == 0) or is_last):
                    miou = self.validate()
                    improved = self.best["miou"] is None or miou > self.best["miou"]
                    if improved:
                        self.best = {"miou": miou, "iteration": self.iteration}
                    if self.dist.is_main:
                        tqdm.write(f"iteration {self.iteration}: val mIoU {miou:.4f} (best {self.best['miou']:.4f} "
                                   f"at {self.best['iteration']})")
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

    def _check_due(self, until: int | None) -> bool:
        """Whether the flags are read after this iteration (train.check_interval > 1): every check_interval
        iterations, and wherever the loop does something that must not follow an unnoticed stop request or a run of
        non-finite losses (a log line, validation, a checkpoint, the end)."""
        t, it = self.cfg.train, self.iteration
        return (it % t.check_interval == 0 or it % t.log_interval == 0 or it % t.checkpoint_interval == 0
                or (t.val_interval and it % t.val_interval == 0) or it == t.max_iters or it == until)

    def _read_tally(self, tally: "_NonfiniteTally", stop_requested: bool) -> bool:
        """One read of the deferred flags: warn about skipped updates, abort on a run of max_nonfinite, return
        whether any rank asked to stop."""
        skipped, worst, run, stopping = tally.read(stop_requested, self.dist)
        if skipped and self.dist.is_main:
            tqdm.write(f"warning: {skipped} non-finite loss(es) up to iteration {self.iteration}; updates skipped "
                       f"(longest run {worst}, {run} in a row now)", file=sys.stderr)
        if worst >= self.cfg.train.max_nonfinite:
            self._abort_nonfinite(worst)
        return stopping

    def _abort_nonfinite(self, run: int) -> None:
        last = ckpt.latest_checkpoint(self.work_dir)
        raise TrainingAborted(
            f"{run} non-finite losses in a row at iteration {self.iteration}; last good "
            f"checkpoint: {last or 'none'}; lower train.optim.lr or check the data")

    def _check_ranks_agree(self) -> None:
        """Every rank must end with the same weights; the per-rank checksums go to the metric log."""
        with torch.no_grad():
            flat = [p.double().sum().item() for p in self.model.parameters()]
            checksum = [math.fsum(flat), math.fsum(abs(v) for v in flat)]
        gathered = all_gather_floats(checksum, self.dist, self.device)
        self.log({"iter": self.iteration, "rank_checksums": gathered})
        if any(g != gathered[0] for g in gathered):
            raise TrainingAborted(f"ranks ended with different weights: checksums {gathered}")


def check_work_dir(work_dir: Path, resume: bool) -> None:
    """A new run (no ``resume``) must not start in a work dir that holds another run: it would overwrite its
    config, append to its metric log, replace its best checkpoint, and a later ``--resume`` would continue the old
    run. Raises :class:`RequestError` naming the folder and both ways out."""
    if resume:
        return
    found = ckpt.run_files(work_dir)
    if found:
        raise RequestError(f"{work_dir} already holds a run ({', '.join(found)}); continue it with --resume, or start "
                           f"a new run in another folder with --work-dir DIR")


def train(cfg: Config, work_dir: str | Path, resume: bool = False, progress: bool | None = None,
          until: int | None = None) -> TrainResult:
    """Train ``cfg`` in ``work_dir`` (see :class:`Trainer`). The caller's process is left as it was: the global
    random generators (seeded and drawn from by training) and the cuDNN/TF32 switches (``train.cudnn_benchmark``,
    ``train.tf32``) are restored when it returns or raises; a process group it did not create stays."""
    with preserved_rng(), preserved_backend_settings():
        return Trainer(cfg, work_dir, resume, progress).train(until)


def load_scaler_state(scaler: torch.amp.GradScaler, state: dict, amp: str) -> str | None:
    """Restore the GradScaler of a checkpoint when it fits this run's ``train.amp``; returns a note when it does
    not (a run resumed with another ``amp`` setting starts with a fresh scaler instead of crashing: a disabled
    scaler saves ``{}``, which an enabled one refuses, and an enabled scaler's state means nothing to bf16/fp32)."""
    if scaler.is_enabled() and state:
        scaler.load_state_dict(state)
        return None
    if not scaler.is_enabled() and not state:
        return None
    return (f"the checkpoint was trained {'with' if state else 'without'} fp16 loss scaling and this run uses "
            f"train.amp={amp}; the loss scaler starts afresh")
