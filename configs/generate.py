"""Writes configs/<dataset>/<model>.yaml for every zoo variant from the three recipes below.

Run `python configs/generate.py` after changing a recipe; the YAML files are committed so that a run's config is
a plain file to read and copy. Every key not written here takes the documented default of scrnet.config.
"""

from pathlib import Path

MODELS = ["scrnet_r18", "scrnet_r50", "scrnet_r101", "scrnet_van_b1", "scrnet_effl0", "fpn_r18", "sfnet_r18"]

# the Cityscapes recipe's train section, shared by BDD100K
STREET_TRAIN = """\
train:
  max_iters: 80000
  batch_size: 16
  num_workers: 4
  optim:
    optimizer: sgd
    lr: 0.01
    momentum: 0.9
    weight_decay: 0.0005
    poly_power: 0.9
    min_lr: 0.0001
  loss:
    ohem: true
    ohem_thresh: 0.7
    ohem_min_kept: 800000  # the global batch's: 100000 per GPU of 2 images x 8 GPUs, as mmsegmentation and SFNet
  val_interval: 8000
  checkpoint_interval: 4000
  check_interval: 25  # the non-finite / stop flags read every 25 steps: the step never waits for the GPU
eval:
  boundary:
    dilation_ratio: 0.005  # Boundary IoU band: 0.005 x diagonal (the reference API's Cityscapes setting)
"""

CITYSCAPES = """\
# {model} on Cityscapes (19 classes): 1024x1024 crops of images resized 0.5-2.0x around 2048x1024, total batch 16,
# OHEM, SGD lr 0.01 with poly 0.9, 80k iterations; whole-image validation at full resolution.
model:
  name: {model}
  num_classes: 19
  backbone_weights: imagenet
data:
  type: cityscapes
  root: data/cityscapes
  train_split: train
  val_split: val
  train:
    scale: [2048, 1024]
    ratio_range: [0.5, 2.0]
    crop_size: [1024, 1024]
    cat_max_ratio: 0.75
  eval:
    scale: null
{street_train}"""

BDD100K = """\
# {model} on BDD100K (the 19 Cityscapes classes): the Cityscapes recipe at a 1280x720 base size with 512x1024 crops.
model:
  name: {model}
  num_classes: 19
  backbone_weights: imagenet
data:
  type: bdd100k
  root: data/bdd100k
  train_split: train
  val_split: val
  train:
    scale: [1280, 720]
    ratio_range: [0.5, 2.0]
    crop_size: [512, 1024]
    cat_max_ratio: 0.75
  eval:
    scale: null
{street_train}"""

ADE20K = """\
# {model} on ADE20K (150 classes): 512x512 crops of images resized 0.5-2.0x around short side 512, total batch 16,
# 160k iterations, {optim_note}; validation with the short side resized to 512.
model:
  name: {model}
  num_classes: 150
  backbone_weights: imagenet
data:
  type: ade20k
  root: data/ade
  train_split: training
  val_split: validation
  train:
    scale: [2048, 512]
    ratio_range: [0.5, 2.0]
    crop_size: [512, 512]
    cat_max_ratio: 0.75
  eval:
    scale: [2048, 512]
train:
  max_iters: 160000
  batch_size: 16
  num_workers: 4
  optim:
{optim}
  val_interval: 16000
  checkpoint_interval: 8000
  check_interval: 25  # the non-finite / stop flags read every 25 steps: the step never waits for the GPU
"""

SGD = """\
    optimizer: sgd
    lr: 0.01
    momentum: 0.9
    weight_decay: 0.0005
    poly_power: 0.9
    min_lr: 0.0001"""

ADAMW = """\
    optimizer: adamw
    lr: 0.00006
    weight_decay: 0.01
    head_lr_mult: 10.0
    poly_power: 1.0
    warmup_iters: 1500"""


def main() -> None:
    root = Path(__file__).parent
    for model in MODELS:
        van = "van" in model
        files = {
            root / "cityscapes" / f"{model}.yaml": CITYSCAPES.format(model=model, street_train=STREET_TRAIN),
            root / "bdd100k" / f"{model}.yaml": BDD100K.format(model=model, street_train=STREET_TRAIN),
            root / "ade20k" / f"{model}.yaml": ADE20K.format(
                model=model, optim=ADAMW if van else SGD,
                optim_note="AdamW lr 6e-5 with warm-up (VAN backbone)" if van else "SGD lr 0.01 with poly 0.9"),
        }
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    print(f"wrote {3 * len(MODELS)} configs under {root}")


if __name__ == "__main__":
    main()
