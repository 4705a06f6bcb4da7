"""``scrnet eval``: score a checkpoint on a split, print the per-class table, and return the eval JSON
(``{"miou", "aacc", "iou", "num_images", "mbiou", "biou"}``, fractions in 0..1)."""

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..config import Config, ConfigError, normalization
from ..data.build import open_checked
from ..data.dataset import SegmentationDataset
from ..data.transforms import EvalTransform
from ..distributed import all_gather_objects, cleanup, init_distributed
from ..loading import LoadedCheckpoint
from ..overrides import apply_overrides
from ..pretrained import from_pretrained
from ..runtime import autocast_for, resolve_device
from .evaluate import EvalResult, evaluate
from .metrics import METRICS_VERSION


@dataclass
class EvalRun:
    result: EvalResult
    config: Config
    is_main: bool
    loaded: LoadedCheckpoint | None = None  # what was scored, for reports
    dataset: SegmentationDataset | None = None
    device: torch.device | None = None
    split: str = ""
    indices: list[int] = field(default_factory=list)  # the images of result.per_image (all ranks' when kept)

    @property
    def renamed_classes(self) -> list[tuple[int, str, str]]:
        """``(index, model's name, data set's name)`` of each class the model names differently from the evaluated
        data set. Classes are scored by index and every output names them as the data set does (the ground truth's
        meaning); a non-empty list is stated in the table, the eval JSON and the report."""
        if self.loaded is None:
            return []
        return [(i, m, d) for i, (m, d) in enumerate(zip(self.loaded.class_names, self.result.class_names)) if m != d]

    def summary(self) -> dict:
        """The metrics (``EvalResult.to_json``) with the data set, split and BIoU* band they were measured on; with
        ``model_class_names`` when the model names its classes differently from the data set."""
        summary = self.result.to_json()
        summary.update({"dataset": self.config.data.type, "split": self.split or self.config.data.val_split,
                        "boundary_width": self.config.eval.boundary_width})
        if self.renamed_classes:
            summary["model_class_names"] = list(self.loaded.class_names)
        return summary

    def measured(self) -> dict:
        """What was scored, for ``publish`` to check an eval against the weights it publishes: ``kind``
        (``weights``, or ``onnx`` for a graph file), ``sha256`` (:func:`scrnet.loading.weights_digest` of the
        weights, or the ONNX file's own), the ``protocol`` (:func:`eval_protocol` of the config as scored) and the
        ``scrnet_version``."""
        from .._version import __version__
        from ..checkpoint_io import sha256_of
        from ..loading import weights_digest
        from ..models import SCRNet

        model = self.loaded.model if self.loaded is not None else None
        if isinstance(model, SCRNet):
            kind, digest = "weights", weights_digest(model)
        else:
            kind, digest = "onnx", sha256_of(self.loaded.path) if self.loaded and self.loaded.path else None
        return {"kind": kind, "sha256": digest, "protocol": eval_protocol(self.config), "scrnet_version": __version__}

    def save_json(self, path: str | Path, model_source: str) -> Path:
        """Write the eval JSON ``scrnet compare`` and ``scrnet publish`` read: the summary, the class names, the
        scored model's source, the resolved config, what it ran on (:func:`scrnet.provenance.environment`), and the
        name of the per-image counts file written beside it (``evaluation.counts``; the run must have been made with
        ``keep_per_image``). Returns ``path``."""
        from ..config import config_to_dict
        from ..provenance import environment
        from .counts import PerImageCounts, counts_path

        if not self.result.per_image:
            raise ValueError("save_json needs the per-image counts: evaluate with keep_per_image=True")
        path = Path(path)
        counts = PerImageCounts.from_result(self.result.per_image, image_names(self)).save(counts_path(path))
        record = dict(self.summary(), class_names=self.result.class_names, model_source=str(model_source),
                      measured=self.measured(), metrics_version=METRICS_VERSION, per_image_counts=counts.name,
                      config=config_to_dict(self.config), environment=environment(self.device))
        path.write_text(json.dumps(record, indent=2) + "\n")
        return path


def eval_protocol(cfg: Config) -> dict:
    """How a model is run and scored: the parts of the config a user of the weights needs (mode, resize, windows,
    test-time augmentation). An eval JSON records it for the run it scored; a published folder for its model."""
    e = cfg.eval
    return {"mode": e.mode, "resize": cfg.data.eval.scale, "crop_size": e.crop_size if e.mode == "slide" else None,
            "stride": e.stride if e.mode == "slide" else None, "tta": e.tta, "scales": e.scales if e.tta else None,
            "flip": e.flip if e.tta else None}


def evaluate_checkpoint(path: str, overrides: list[str] | None = None, split: str | None = None,
                        device: str = "auto", progress: bool = False, num_workers: int | None = None,
                        keep_per_image: bool = False) -> EvalRun:
    """``num_workers``: image-loading processes (default 4 on CUDA, 0 on the CPU, where they would compete with
    the network for the same cores). ``keep_per_image`` keeps each image's counts (for the report and the counts file
beside the eval JSON), gathered from every rank."""
    loaded = from_pretrained(path)  # a checkpoint file, a published folder or hf://ORG/NAME[@REVISION]
    try:
        cfg = apply_overrides(loaded.config, overrides)
    except ValueError as exc:
        raise ConfigError(f"bad override: {exc}") from None
    split = split or cfg.data.val_split
    if not cfg.data.root:
        raise ConfigError(f"{path} names no data root (published models never carry the author's): pass "
                          f"--data.root DIR (data.type={cfg.data.type})")
    source = open_checked(cfg.data.type, cfg.data.root, split)
    if source.num_classes != len(loaded.class_names):
        raise ConfigError(f"checkpoint {path} predicts {len(loaded.class_names)} classes but the {cfg.data.type} "
                          f"data set at {cfg.data.root} has {source.num_classes}")
    dev = resolve_device(device)
    dist = init_distributed(dev.type)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    dataset = SegmentationDataset(source, EvalTransform(cfg.data.eval))
    normalize = normalization(cfg)  # the checkpoint's, unless an override set data.mean/std explicitly
    result = evaluate(loaded.model.to(dev), dataset, dev, cfg.eval, normalize, rank=dist.rank,
                      world_size=dist.world_size,
                      autocast=autocast_for(cfg.train.amp, dev) if dev.type == "cuda" else None,
                      progress=progress and dist.is_main,
                      num_workers=(4 if dev.type == "cuda" else 0) if num_workers is None else num_workers,
                      keep_per_image=keep_per_image)
    indices = list(range(dist.rank, len(dataset), dist.world_size))
    if keep_per_image and dist.enabled:  # every rank's images, in data set order, on every rank
        pairs = sorted((i, c) for part in all_gather_objects(list(zip(indices, result.per_image)), dist)
                       for i, c in part)
        indices, result.per_image = [i for i, _ in pairs], [c for _, c in pairs]
    cleanup(dist)
    return EvalRun(result, cfg, dist.is_main, loaded, dataset, dev, split, indices)


def image_names(run: EvalRun) -> list[str]:
    """The names (relative to the data root) of the images in ``run.result.per_image``, same order."""
    root = Path(run.dataset.source.root)
    names = []
    for i in run.indices:
        path = Path(run.dataset.source.pairs[i][0])
        names.append(str(path.relative_to(root)) if path.is_relative_to(root) else str(path))
    return names


def renamed_note(summary: dict) -> str | None:
    """One line saying that the model's class names differ from the data set's (None when they agree)."""
    model_names = summary.get("model_class_names")
    if not model_names:
        return None
    pairs = [(m, d) for m, d in zip(model_names, summary["iou"]) if m != d]
    shown = ", ".join(f"model {m!r} as {d!r}" for m, d in pairs[:3]) + (", ..." if len(pairs) > 3 else "")
    return (f"note: the model names {len(pairs)} of its {len(model_names)} classes differently from the data set "
            f"({shown}); classes are scored by index and named as in the data set")


def format_table(summary: dict) -> str:
    def pct(v):
        return "   n/a" if v is None else f"{100 * v:6.2f}"

    published = "boundary_iou" in summary
    tolerances = list(summary.get("boundary_f", {}))
    per_image = summary.get("boundary_f_mode") == "per_image"
    f_name = "pF@" if per_image else "F@"
    head = f"{'class':<24}{'IoU':>8}{'BIoU*':>8}"
    if published:
        head += f"{'BndIoU':>8}" + "".join(f"{f_name + t + 'px':>8}" for t in tolerances)

    def row(name, iou, legacy, key):
        text = f"{name:<24}{pct(iou):>8}{pct(legacy):>8}"
        if published:
            pick = (lambda block: block["mean"]) if key is None else (lambda block: block["per_class"][key])
            text += f"{pct(pick(summary['boundary_iou'])):>8}"
            text += "".join(f"{pct(pick(summary['boundary_f'][t])):>8}" for t in tolerances)
        return text

    lines = [head]
    for name, iou in summary["iou"].items():
        lines.append(row(name, iou, summary["biou"][name], name))
    lines.append(row("mean", summary["miou"], summary["mbiou"], None))
    lines.append(f"pixel accuracy {pct(summary['aacc']).strip()}%, {summary['num_images']} images")
    note = renamed_note(summary)
    if note:
        lines.append(note)
    if published:
        bands = ", ".join((f"{b['from']:g}+" if b["to"] is None else f"{b['from']:g}-{b['to']:g}") + " px "
                          f"{pct(b['miou']).strip()}" for b in summary["distance_bands"])
        f_text = ("pF@N: boundary F-score at N px, per image as published (Gated-SCNN / DAVIS)" if per_image else
                  "F@N: boundary F-score at N px, pooled over the split (ours)")
        lines.append(f"BndIoU: Boundary IoU (Cheng et al. 2021), band = {summary['boundary_iou']['dilation_ratio']}"
                     f" x image diagonal; {f_text}; BIoU*: our fixed-width band")
        lines.append(f"mIoU by distance from ground-truth boundaries: {bands}")
    return "\n".join(lines)
