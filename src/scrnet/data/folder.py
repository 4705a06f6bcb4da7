"""Users' own data: ``<root>/<split>/images/*.{jpg,png,...}`` with ``<root>/<split>/masks/*.png`` paired by file
stem, class names in ``<root>/classes.txt`` (one per line, optionally ``name r g b``). Masks hold train ids
``0..K-1``; 255 is ignored.
"""

from collections import Counter
from pathlib import Path

from .io import IMAGE_SUFFIXES, DataError
from .source import DataSource, check_not_empty, distinct_palette, identity_labels, pair_by_key, require_dirs

LAYOUT = "ROOT/classes.txt, ROOT/SPLIT/images/*.{jpg,png,...} and ROOT/SPLIT/masks/*.png (same stems)"


def read_classes(path: Path) -> tuple[list[str], list[tuple[int, int, int]]]:
    """``classes.txt``: a name per line, optionally followed by ``r g b``; blank lines and ``#`` comments skipped."""
    names, colours = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) >= 4 and all(p.isdigit() for p in parts[-3:]):
            rgb = tuple(int(p) for p in parts[-3:])
            if max(rgb) > 255:
                raise DataError(f"{path}:{lineno}: colour {rgb} is outside 0..255")
            names.append(" ".join(parts[:-3]))
            colours.append(rgb)
        else:
            names.append(line)
            colours.append(None)
    if not names:
        raise DataError(f"{path} lists no classes; expected one class name per line (optionally 'name r g b')")
    if len(names) > 255:
        raise DataError(f"{path} lists {len(names)} classes; at most 255 fit 8-bit masks with 255 ignored")
    default = distinct_palette(len(names))
    return names, [c if c is not None else default[i] for i, c in enumerate(colours)]


def open_folder(root: str | Path, split: str) -> DataSource:
    root = Path(root)
    image_dir, mask_dir = root / split / "images", root / split / "masks"
    problems: list[str] = []
    pairs: list = []
    names: list[str] = []
    palette: list = []
    classes = root / "classes.txt"
    if require_dirs([root], LAYOUT, problems):
        if not classes.is_file():
            problems.append(f"file not found: {classes}; expected layout: {LAYOUT}")
        else:
            names, palette = read_classes(classes)
        if require_dirs([image_dir, mask_dir], LAYOUT, problems):
            files = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            images = {p.stem: p for p in files}
            if len(images) < len(files):
                shared = sorted(stem for stem, n in Counter(p.stem for p in files).items() if n > 1)
                problems.append(f"{len(files) - len(images)} images in {image_dir} share a stem with another "
                                f"image, so their masks are ambiguous: {', '.join(shared[:3])}")
            masks = {p.stem: p for p in mask_dir.glob("*.png")}
            pairs = pair_by_key(images, masks, image_dir, mask_dir, problems)
            check_not_empty(pairs, f"{image_dir} ({LAYOUT})", problems)
    lut, valid = identity_labels(len(names))
    return DataSource("folder", root, split, pairs, names, palette, lut, valid, problems)
