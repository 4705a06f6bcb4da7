"""Scoring a model on a split: one :class:`~scrnet.evaluation.metric_set.MetricSet` over the whole split, summed
over processes, predictions scored at the label's original resolution."""

import dataclasses
import time
from contextlib import nullcontext
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from ..data.dataset import SegmentationDataset
from ..data.io import batches, loader_worker_init
from ..data.transforms import Normalize
from ..runtime import synchronize
from .boundary import BIoUStar
from .inference import infer_as_configured
from .metric_set import ImageCounts, MetricSet, summary
from .metrics import ConfusionMatrix
from .published_boundary import PublishedBoundaryMetrics

__all__ = ["EvalResult", "ImageCounts", "evaluate"]


@dataclass
class EvalResult:
    confusion: ConfusionMatrix
    boundary: BIoUStar
    num_images: int
    class_names: list[str]
    seconds: dict[str, float] = field(default_factory=dict)  # total; with timing=True also data/network/metric
    per_image: list[ImageCounts] = field(default_factory=list)  # with keep_per_image
    published: PublishedBoundaryMetrics | None = None  # eval.boundary.enabled

    def to_json(self) -> dict:
        """``{"miou", "aacc", "iou": {class: IoU|None}, "num_images", "mbiou", "biou": {class: BIoU|None}}`` and,
        with the published boundary metrics, ``"boundary_iou": {"dilation_ratio", "mean", "per_class"}``,
        ``"boundary_f": {"3": {"mean", "per_class"}, ...}``, ``"distance_bands": [{"from", "to", "miou"}, ...]``
        (:func:`~scrnet.evaluation.metric_set.summary`)."""
        return {**summary(self.confusion, self.boundary, self.published, self.class_names),
                "num_images": self.num_images}


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, device: torch.device, eval_cfg,
             normalize: Normalize, tta: bool | None = None, rank: int = 0, world_size: int = 1, autocast=None,
             progress: bool = False, channels_last: bool = False, limit: int | None = None,
             keep_per_image: bool = False, num_workers: int = 0, timing: bool = False,
             boundary_metrics: bool | None = None) -> EvalResult:
    """Inference (``eval_cfg.mode``, TTA when ``tta`` or ``eval_cfg.tta``) over this rank's share of ``dataset``
    (indices ``rank::world_size``); the returned counts are summed over ranks. ``keep_per_image`` also keeps each
    image's confusion matrix and boundary counts (this rank's images), e.g. for bootstrap intervals.

    Images are decoded by ``num_workers`` loader processes (0: in this process) and cross to the device as uint8
    (pinned, non-blocking on CUDA); ``normalize`` casts and normalises them there. Metrics accumulate on the device,
    so the loop never waits for the GPU, unless ``timing`` asks for the data / network / metric split (one
    synchronisation per image and stage, for benchmarks); ``keep_per_image`` keeps each image's counts on the device
    and reads them back ``READBACK_IMAGES`` images at a time.
    ``boundary_metrics`` (default ``eval_cfg.boundary.enabled``) adds the published boundary metrics, computed on
    the device too (on CUDA without reading anything back; the CPU's faster F-score search sizes its work from the
    image).
    """
    if tta is not None and tta != eval_cfg.tta:  # the caller's choice, on a copy of its config
        eval_cfg = dataclasses.replace(eval_cfg, tta=tta)
    was_training = model.training
    model.eval()
    k = len(dataset.class_names)
    metrics = MetricSet(k, eval_cfg, device, eval_cfg.boundary.enabled if boundary_metrics is None else
                        boundary_metrics, keep_per_image)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    indices = list(range(rank, len(dataset) if limit is None else min(limit, len(dataset)), world_size))
    loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=1,
                                         num_workers=num_workers, pin_memory=device.type == "cuda",
                                         worker_init_fn=loader_worker_init)
    clock = _StageClock(device, timing)
    for batch in tqdm(batches(loader), total=len(loader), desc="eval", disable=not progress, leave=False):
        image = normalize(batch["image"].to(device, non_blocking=True), memory_format)
        target = batch["mask"][0].to(device, non_blocking=True)
        clock.lap("data")
        with autocast or nullcontext():
            scores = infer_as_configured(model, image, tuple(target.shape), eval_cfg, k)
        pred = scores.argmax(1)[0]
        clock.lap("network")
        metrics.update(pred, target)
        clock.lap("metric")
    metrics.finish()
    num = torch.tensor([len(indices)], device=device)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.all_reduce(num)
    model.train(was_training)
    return EvalResult(metrics.confusion, metrics.boundary, int(num.item()), list(dataset.class_names),
                      clock.seconds(), metrics.per_image, metrics.published)


class _StageClock:
    """Seconds per stage of the loop (data / network / metric), synchronising the device at each lap only when
    ``timing`` asks for the split; otherwise only the total is kept (the split would be meaningless)."""

    def __init__(self, device: torch.device, timing: bool):
        self.device, self.timing = device, timing
        self.split = {"data": 0.0, "network": 0.0, "metric": 0.0}
        self.start = self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        if self.timing:
            synchronize(self.device)
            now = time.perf_counter()
            self.split[stage] += now - self.last
            self.last = now

    def seconds(self) -> dict[str, float]:
        synchronize(self.device)
        total = {"total": time.perf_counter() - self.start}
        return {**self.split, **total} if self.timing else total
