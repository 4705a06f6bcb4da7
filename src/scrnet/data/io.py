"""Reading images and label masks, with one clear error naming the file for anything unreadable."""

import signal
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ..errors import ScrnetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ScrnetError, ValueError):
    """A data set problem; the message names the file or folder and what was expected."""


def loader_worker_init(_worker_id: int) -> None:
    """``worker_init_fn`` of scrnet's DataLoaders; it changes only the worker process it runs in.

    - One OpenCV thread per worker: loading parallelises over the workers, and OpenCV's own threads would
      oversubscribe the cores.
    - SIGTERM is ignored. A scheduler stopping a job (Slurm's scancel or time limit, ``kill -- -PGID``) signals every
      process of the job at once; a worker that died of it would make torch abort the main process before the
      trainer could finish its iteration and save. The main process stops the workers itself as it exits (torch's
      shutdown asks them to), and a worker whose parent has died exits on its own."""
    cv2.setNumThreads(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def worker_message(text: str) -> str | None:
    """The original one-line message of an error that a DataLoader worker raised and torch re-raised in the main
    process as "Caught X in DataLoader worker process N. Original Traceback ..." (None for any other text)."""
    if not text.startswith("Caught ") or "\nOriginal Traceback" not in text:
        return None
    last = [line for line in text.splitlines() if line.strip()][-1]
    _, sep, message = last.partition(": ")
    return message if sep else None


def batches(loader):
    """The batches of a DataLoader; a scrnet error raised in a worker process reaches the caller as the same error
    with its own one-line message (naming the file), not torch's 15-line wrapper with the worker's traceback."""
    try:
        yield from loader
    except ScrnetError as exc:
        message = worker_message(str(exc))
        if message is None:
            raise
        raise type(exc)(message) from None


def read_image(path: str | Path) -> np.ndarray:
    """An image file as RGB uint8 ``H x W x 3``.

    Grayscale is replicated to three channels, alpha is dropped, 16-bit images are scaled to 8 bits, and the EXIF
    orientation is applied (OpenCV's ``IMREAD_COLOR``/``IMREAD_COLOR_RGB`` do all four). Truncated or unreadable
    files raise :class:`DataError` naming the file.
    """
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"cannot read image {path}: {exc.strerror or exc}") from None
    if Path(path).suffix.lower() in (".jpg", ".jpeg") and b"\xff\xd9" not in data[-64:].tobytes():
        raise DataError(f"truncated image {path}: the JPEG data ends before its end marker")
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)  # OpenCV >= 4.10 decodes straight to RGB (~4% faster);
    # older OpenCV decodes to BGR and converts
    flag = rgb_flag if rgb_flag is not None else cv2.IMREAD_COLOR
    image = cv2.imdecode(data, flag) if data.size else None
    if image is None:
        raise DataError(f"unreadable or truncated image {path}")
    return image if rgb_flag is not None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str | Path) -> np.ndarray:
    """A label mask as a 2-D integer array (uint8 or uint16): grayscale, 16-bit or palette PNG (palette indices).

    A colour (RGB) mask raises :class:`DataError`: masks hold label ids, not colours.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode not in ("L", "P", "I;16", "I;16B", "I;16L", "I", "1"):
                raise DataError(f"mask {path} has mode {im.mode} ({len(im.getbands())} channels); expected a "
                                "single-channel image of label ids (grayscale, 16-bit or palette PNG)")
            mask = np.asarray(im)
    except DataError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"unreadable or truncated mask {path}: {exc}") from None
    if mask.dtype == bool:
        mask = mask.astype(np.uint8)
    if mask.dtype not in (np.uint8, np.uint16):
        if mask.min() < 0 or mask.max() > 65535:
            raise DataError(f"mask {path} has values outside 0..65535")
        mask = mask.astype(np.uint16)
    return mask
