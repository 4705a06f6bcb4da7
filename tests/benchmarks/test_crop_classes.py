"""``benchmarks/crop_classes.py``: class frequencies of the training crops, checked against the masks themselves."""

import numpy as np
from cli_helpers import run_benchmark
from PIL import Image
from train_fixtures import synthetic_set


def test_whole_image_crops_count_every_labelled_pixel_of_the_split(tmp_path):
    root = synthetic_set(tmp_path / "synth", num_train=3)
    config = tmp_path / "c.yaml"  # no rescaling, a crop as large as the image: crops are the masks (flipped or not)
    config.write_text(f"data:\n  type: folder\n  root: {root}\n  train:\n    scale: [128, 64]\n"
                      f"    ratio_range: [1.0, 1.0]\n    crop_size: [64, 128]\ntrain:\n  batch_size: 2\n")
    result = run_benchmark("crop_classes.py", config, "--passes", "2", "model.num_classes=9")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "6 training crops (2 passes, seed 0), batches of 2"
    masks = [np.asarray(Image.open(p)) for p in sorted((root / "train" / "masks").glob("*.png"))]
    labels = np.concatenate([m.ravel() for m in masks])
    labels = labels[labels < 9]
    share = np.bincount(labels, minlength=9) / labels.size
    holding = np.array([[np.any(m == c) for c in range(9)] for m in masks]).mean(axis=0)
    for row, s, h in zip(lines[2:], share, holding):
        cells = row.split()
        assert cells[1] == f"{100 * s:.2f}%" and cells[2] == f"{100 * h:.1f}%"
        assert cells[3] == f"{100 * (1 - h) ** 2:.1f}%"
