"""``scrnet predict``: segment images, folders, glob patterns and videos; write them at the input's resolution.

Formats: ``color`` (palette image), ``overlay`` (palette blended over the image), ``trainid`` (class indices),
``labelid`` (Cityscapes label ids, named ``<input stem>.png``, which the official evaluator and test server match by
their ``city_sequence_frame`` prefix). Videos come out as annotated videos (``color`` or ``overlay``). A file that
cannot be read is reported by name and skipped; every output is written as soon as it is ready.
"""

import glob
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from tqdm import tqdm

from ..data.cityscapes import CLASSES as CITYSCAPES_CLASSES
from ..data.cityscapes import TRAIN_TO_LABEL
from ..data.io import IMAGE_SUFFIXES, DataError, read_image
from ..data.source import palette_table
from ..data.transforms import fit_size, to_chw_uint8
from ..drawing import flow_to_color
from ..errors import RequestError
from ..evaluation.inference import infer_as_configured, resize
from ..loading import LoadedCheckpoint
from ..outputs import OutputFolder

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
FORMATS = ("color", "overlay", "trainid", "labelid")


def collect_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """``(file, output path without suffix)`` for every input, and the inputs that matched nothing.

    A folder is searched recursively for images and videos and keeps its sub-folders in the output; a pattern
    with ``*``, ``?`` or ``[`` is a glob (``**`` recursive); a file is taken as it is, whatever its suffix.
    """
    found, unmatched = [], []
    media = IMAGE_SUFFIXES + VIDEO_SUFFIXES
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in media)
            found += [(p, p.relative_to(path).with_suffix("")) for p in files]
        elif path.is_file():
            found.append((path, Path(path.stem)))
        elif any(c in item for c in "*?["):
            files = sorted(Path(p) for p in glob.glob(item, recursive=True) if Path(p).is_file())
            found += [(p, Path(p.stem)) for p in files]
            if not files:
                unmatched.append(item)
        else:
            unmatched.append(item)
    return found, unmatched


class Predictor:
    """Runs a loaded checkpoint on RGB uint8 images at their own resolution, with the normalisation and eval
    protocol it was trained with."""

    def __init__(self, loaded: LoadedCheckpoint, device: torch.device):
        self.model, self.cfg, self.device = loaded.model.to(device).eval(), loaded.config, device
        self.class_names = loaded.class_names
        self.palette = palette_table(loaded.palette)
        self.normalize = loaded.normalization

    def _input(self, rgb: np.ndarray) -> torch.Tensor:
        scale = self.cfg.data.eval.scale
        if scale is not None:
            nh, nw = fit_size(*rgb.shape[:2], *scale)
            rgb = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_LINEAR)
        return self.normalize(to_chw_uint8(rgb).unsqueeze(0).to(self.device))

    @torch.no_grad()
    def scores(self, rgb: np.ndarray) -> torch.Tensor:
        """Per-pixel scores ``1 x K x H x W`` at the image's resolution, by the checkpoint's eval protocol (mode,
        resize, windows, multi-scale + flip when ``eval.tta``): logits, or averaged probabilities with TTA."""
        e = self.cfg.eval
        return infer_as_configured(self.model, self._input(rgb), rgb.shape[:2], e, len(self.class_names))

    @torch.no_grad()
    def predict(self, rgb: np.ndarray) -> np.ndarray:
        """Train ids ``H x W`` (uint8) at the image's resolution."""
        return self.scores(rgb).argmax(1)[0].to(torch.uint8).cpu().numpy()

    @torch.no_grad()
    def offsets(self, rgb: np.ndarray) -> np.ndarray:
        """The finest SRM step's offsets (``2 x H x W``, in pixels of the input) at the image's resolution."""
        out = self.model(self._input(rgb), return_offsets=True)
        finest = out.offsets[-1]
        if finest is None:
            raise RequestError("this model has no SRM offsets (model.srm.mode=bilinear)")
        h, w = rgb.shape[:2]
        scale = torch.tensor([w / finest.shape[-1], h / finest.shape[-2]], device=finest.device).view(1, 2, 1, 1)
        return (resize(finest.float(), (h, w)) * scale)[0].cpu().numpy()

    def render(self, rgb: np.ndarray, pred: np.ndarray, fmt: str) -> np.ndarray:
        """The image to write (RGB for color/overlay, single channel for trainid/labelid)."""
        if fmt == "color":
            return self.palette[pred]
        if fmt == "overlay":
            return cv2.addWeighted(rgb, 0.5, self.palette[pred], 0.5, 0)
        if fmt == "labelid":
            lut = np.zeros(256, np.uint8)
            for train_id, label_id in TRAIN_TO_LABEL.items():
                lut[train_id] = label_id
            return lut[pred]
        return pred


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # "path: reason"


def write_rgb(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 else rgb
    if not cv2.imwrite(str(path), image):
        raise OSError(f"cannot write {path}")


def predict_video(predictor: Predictor, src: Path, dst: Path, fmt: str) -> Path:
    capture = cv2.VideoCapture(str(src))
    if not capture.isOpened():
        raise DataError(f"unreadable video {src}")
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    writer, frames, out = None, 0, dst
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            shown = predictor.render(rgb, predictor.predict(rgb), "color" if fmt == "color" else "overlay")
            if writer is None:
                out.parent.mkdir(parents=True, exist_ok=True)
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, (rgb.shape[1], rgb.shape[0]))
            writer.write(cv2.cvtColor(shown, cv2.COLOR_RGB2BGR))
            frames += 1
    finally:
        capture.release()
        if writer is not None:
            writer.release()
    if frames == 0:
        raise DataError(f"unreadable video {src}: no frame could be decoded")
    return out


def destinations(inputs: list[tuple[Path, Path]], out_dir: Path, show_offsets: bool = False) -> list[list[Path]]:
    """The files each input writes under ``out_dir``: a PNG per image (and its offsets PNG), an MP4 per video."""
    planned = []
    for src, rel in inputs:
        if src.suffix.lower() in VIDEO_SUFFIXES:
            planned.append([(out_dir / rel).with_suffix(".mp4")])
        else:
            files = [(out_dir / rel).with_suffix(".png")]
            if show_offsets:
                files.append(out_dir / rel.parent / f"{rel.name}_offsets.png")
            planned.append(files)
    return planned


def predict_inputs(predictor: Predictor, inputs: list[tuple[Path, Path]], out_dir: Path, fmt: str,
                   show_offsets: bool = False, progress: bool = False) -> PredictReport:
    """Predict every input into ``out_dir`` (see :func:`destinations`). Before anything is written, refuses
    (``OutputRefused``) when an output file exists that scrnet did not write (an input inside ``out_dir``, a
    user's file), and (``RequestError``) when two inputs would write the same file (``a.jpg`` and ``a.png``)."""
    if fmt == "labelid" and predictor.class_names != CITYSCAPES_CLASSES:
        raise RequestError("--format labelid writes Cityscapes label ids; this checkpoint's classes are not "
                         f"Cityscapes' 19 ({len(predictor.class_names)} classes: {predictor.class_names[:3]} ...)")
    planned = destinations(inputs, out_dir, show_offsets)
    seen: dict[Path, Path] = {}
    for (src, _), files in zip(inputs, planned):
        for dst in files:
            if dst in seen:
                raise RequestError(f"{seen[dst]} and {src} would both be written to {dst}; predict them into "
                                   f"separate --out folders")
            seen[dst] = src
    folder = OutputFolder(out_dir, "predict")
    folder.check(seen)
    report = PredictReport()
    try:
        for (src, rel), files in tqdm(list(zip(inputs, planned)), desc="predict", unit="file",
                                      disable=not progress):
            try:
                if src.suffix.lower() in VIDEO_SUFFIXES:
                    report.written.append(predict_video(predictor, src, folder.claim(files[0]), fmt))
                    continue
                rgb = read_image(src)
                write_rgb(folder.claim(files[0]), predictor.render(rgb, predictor.predict(rgb), fmt))
                report.written.append(files[0])
                if show_offsets:
                    write_rgb(folder.claim(files[1]), flow_to_color(predictor.offsets(rgb)))
                    report.written.append(files[1])
            except (DataError, OSError) as exc:
                report.failures.append(str(exc) if str(src) in str(exc) else f"{src}: {exc}")
    finally:
        folder.save()
    return report
