"""The data checker: validates a data set tree without training and counts what it holds."""

from collections import Counter
from dataclasses import asdict, dataclass, field

import numpy as np
from tqdm import tqdm

from .build import open_source
from .io import DataError, read_image, read_mask
from .source import IGNORE


@dataclass
class CheckReport:
    type: str
    root: str
    split: str
    num_pairs: int
    image_sizes: dict[str, int] = field(default_factory=dict)  # "WxH" -> number of images
    class_pixels: dict[str, int] = field(default_factory=dict)  # class name -> pixels, in train ids
    ignored_pixels: int = 0
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return asdict(self)


def check_dataset(data_type: str, root: str, split: str, progress: bool = False) -> CheckReport:
    """Read every pair of the split; every problem found is reported (a problem never stops the check)."""
    source = open_source(data_type, root, split)
    report = CheckReport(data_type, str(root), split, len(source.pairs), problems=list(source.problems))
    sizes: Counter = Counter()
    counts = np.zeros(256, dtype=np.int64)
    for image_path, mask_path in tqdm(source.pairs, desc=f"checking {split}", disable=not progress, unit="pair"):
        try:
            image = read_image(image_path)
            sizes[f"{image.shape[1]}x{image.shape[0]}"] += 1
            raw = read_mask(mask_path)
            if raw.shape != image.shape[:2]:
                raise DataError(f"mask {mask_path} is {raw.shape[1]}x{raw.shape[0]} but its image {image_path} is "
                                f"{image.shape[1]}x{image.shape[0]} (width x height)")
            counts += np.bincount(source.to_train_ids(raw, mask_path).ravel(), minlength=256)
        except DataError as exc:
            report.problems.append(str(exc))
    report.image_sizes = dict(sizes.most_common())
    report.class_pixels = {name: int(counts[i]) for i, name in enumerate(source.class_names)}
    report.ignored_pixels = int(counts[IGNORE])
    return report


def format_check(report: CheckReport) -> str:
    lines = [f"{report.type} {report.split} at {report.root}: {report.num_pairs} pairs"]
    if report.image_sizes:
        lines.append("image sizes: " + ", ".join(f"{s} ({n})" for s, n in report.image_sizes.items()))
    total = sum(report.class_pixels.values()) + report.ignored_pixels
    if total:
        lines.append(f"{'class':<24}{'pixels':>14}{'share':>8}")
        for name, n in report.class_pixels.items():
            lines.append(f"{name:<24}{n:>14}{n / total:>8.2%}")
        lines.append(f"{'(ignored)':<24}{report.ignored_pixels:>14}{report.ignored_pixels / total:>8.2%}")
    absent = [n for n, c in report.class_pixels.items() if c == 0]
    if absent and report.num_pairs:
        lines.append(f"classes with no pixels in this split: {', '.join(absent)}")
    lines.append(f"{len(report.problems)} problem(s)" + (":" if report.problems else ""))
    lines += [f"  - {p}" for p in report.problems]
    return "\n".join(lines)
