"""How often each class appears in the training crops a config draws: its share of the labelled pixels, the share of
crops that hold it, and the share of batches (of the config's batch size, its crops drawn independently) that would
hold none of it. Thin or rare classes that many batches lack are learned late; this is one measurement behind the
study recipe's choice (docs/studies.md, "The study recipe").

    python benchmarks/crop_classes.py ../configs/synthetic_study/scrnet_effl0.yaml --passes 4 --seed 100 \\
        data.root=../data/synthetic

Crops come from the training split through the config's own training transform (scale, crop, flip), ``--passes``
times over the split, with the data pipeline seeded by ``--seed``; pixels labelled ignore are left out. No network
runs.
"""

import argparse

import numpy as np

from scrnet.config import load_config
from scrnet.data.build import build_dataset


def crop_class_table(config: str, overrides: list[str], passes: int, seed: int) -> tuple[list[str], np.ndarray,
                                                                                        np.ndarray, int, int]:
    """(class names, labelled pixels per class, crops holding each class, crops drawn, batch size)."""
    cfg = load_config(config, overrides)
    dataset = build_dataset(cfg.data, cfg.data.train_split, train=True, seed=seed)
    names = list(dataset.class_names)
    k = len(names)
    pixels, holding, crops = np.zeros(k, np.int64), np.zeros(k, np.int64), 0
    for _ in range(passes):
        for i in range(len(dataset)):
            labels = np.asarray(dataset[i]["mask"]).ravel()
            counts = np.bincount(labels[labels < k], minlength=k)
            pixels += counts
            holding += counts > 0
            crops += 1
    return names, pixels, holding, crops, cfg.train.batch_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.add_argument("--passes", type=int, default=4, help="passes over the training split (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the data pipeline (default 0)")
    args = parser.parse_intermixed_args()
    names, pixels, holding, crops, batch = crop_class_table(args.config, args.overrides, args.passes, args.seed)
    print(f"{crops} training crops ({args.passes} passes, seed {args.seed}), batches of {batch}")
    print(f"{'class':12s} {'pixels':>8s} {'in crops':>9s} {'batches without it':>19s}")
    for name, p, h in zip(names, pixels, holding):
        without = (1 - h / crops) ** batch
        print(f"{name:12s} {100 * p / pixels.sum():7.2f}% {100 * h / crops:8.1f}% {100 * without:18.1f}%")


if __name__ == "__main__":
    main()
