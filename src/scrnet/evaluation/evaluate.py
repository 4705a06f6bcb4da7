"""Scoring a model on a split: one confusion matrix over the whole split, summed over processes."""

from contextlib import nullcontext

import torch
from tqdm import tqdm

from ..data.dataset import SegmentationDataset
from .inference import infer_whole
from .metrics import ConfusionMatrix


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: SegmentationDataset, device: torch.device, rank: int = 0,
             world_size: int = 1, autocast=None, progress: bool = False,
             channels_last: bool = False) -> ConfusionMatrix:
    """Whole-image inference over this rank's share of ``dataset`` (indices ``rank::world_size``); the returned
    matrix is already summed over ranks. Predictions are scored at the label's original resolution."""
    was_training = model.training
    model.eval()
    cm = ConfusionMatrix(len(dataset.class_names), device=device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    for index in tqdm(range(rank, len(dataset), world_size), desc="val", disable=not progress, leave=False):
        item = dataset[index]
        image = item["image"].unsqueeze(0).to(device).contiguous(memory_format=memory_format)
        target = item["mask"].to(device)
        with autocast or nullcontext():
            logits = infer_whole(model, image, tuple(target.shape))
        cm.update(logits.argmax(1)[0], target)
    cm.all_reduce()
    model.train(was_training)
    return cm
