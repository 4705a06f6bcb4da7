"""The one recipe the training tests share: a seconds-long CPU run of a small network on a synthetic folder set."""

from pathlib import Path

from scrnet.data.synthetic import generate_synthetic


def synthetic_set(folder: Path, num_train: int) -> Path:
    """A synthetic folder data set of ``num_train`` training and 2 validation images at 64x128 (seed 0)."""
    return generate_synthetic(folder, num_train=num_train, num_val=2, size=(64, 128), seed=0)


def tiny_run(root, *extra: str, channels: int = 32, interval: int = 5) -> list[str]:
    """Overrides for a tiny ResNet-18 SCRNet run on ``root``: 64x64 crops, batch 2, no workers, no validation, a
    checkpoint and a log line every ``interval`` iterations; ``extra`` overrides come last and win."""
    return [f"data.root={root}", "data.type=folder", "model.name=scrnet_r18", "model.num_classes=9",
            f"model.channels={channels}", "train.batch_size=2", "train.num_workers=0", "data.train.crop_size=[64,64]",
            "data.train.scale=[128,64]", "train.val_interval=0", f"train.checkpoint_interval={interval}",
            "train.tensorboard=false", f"train.log_interval={interval}", *extra]
