"""Small SCRNet models for the tests that need a checkpoint to score, export or publish."""

import torch

import scrnet


def varied_r18(num_classes: int, channels: int, seed: int) -> torch.nn.Module:
    """A seeded random ``scrnet_r18`` whose classifier is widened (normal, std 0.5), so that its predictions hit many
    classes instead of one."""
    torch.manual_seed(seed)
    model = scrnet.create_model("scrnet_r18", num_classes=num_classes, channels=channels)
    with torch.no_grad():
        model.decoder.classifier.weight.normal_(0, 0.5)
    return model
