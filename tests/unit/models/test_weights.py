"""Backbone weight metadata: the recorded parameter counts and compute are what this library measures, the local
file's sha256 is checked on load, and downloads ask torch.hub to check the file name's hash prefix."""

import pytest
import torch

from scrnet.models.backbones import BACKBONES, IMAGENET_WEIGHTS, build_backbone
from scrnet.profiling.flops import count_macs


class Classifier(torch.nn.Module):
    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return self.backbone.classify(x)


@pytest.mark.parametrize("name", sorted(IMAGENET_WEIGHTS))
def test_recorded_params_and_gmacs_are_measured(name):
    weights = IMAGENET_WEIGHTS[name]
    assert BACKBONES[name].imagenet is weights
    with torch.device("meta"):
        model = BACKBONES[name].build(num_classes=1000).eval()
    assert sum(p.numel() for p in model.parameters()) == weights.num_params
    total, _, _ = count_macs(Classifier(model), weights.eval_size)
    assert round(total / 1e9, 3) == weights.gmacs
    assert weights.metrics and weights.reported_by and weights.license and weights.recipe


def test_hash_prefixes_of_the_torchvision_files():
    assert IMAGENET_WEIGHTS["resnet18"].hash_prefix == "f37072fd"
    assert IMAGENET_WEIGHTS["resnet101"].hash_prefix == "cd907fc2"
    assert IMAGENET_WEIGHTS["van_b1"].hash_prefix is None  # the VAN files carry no hash in their names


def test_downloads_check_the_hash_prefix(monkeypatch):
    seen = {}

    def fake(url, **kwargs):
        seen.update(kwargs, url=url)
        return build_backbone("resnet18").state_dict()

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake)
    build_backbone("resnet18", "imagenet")
    assert seen["check_hash"] is True and seen["url"].endswith("resnet18-f37072fd.pth")


def test_the_local_file_is_checked_against_its_sha256(monkeypatch, tmp_path):
    weights = IMAGENET_WEIGHTS["efficientnet_lite0"]
    from scrnet.checkpoint_io import sha256_of

    assert sha256_of(weights.local()) == weights.sha256  # the installed package's file
    fake = tmp_path / "lite0.pth"
    torch.save(build_backbone("efficientnet_lite0").state_dict(), fake)
    import dataclasses

    swapped = dataclasses.replace(weights, local=lambda: str(fake))
    monkeypatch.setitem(BACKBONES, "efficientnet_lite0", dataclasses.replace(BACKBONES["efficientnet_lite0"],
                                                                              imagenet=swapped))
    with pytest.raises(ValueError, match="sha256 differs from the 5793442"):
        build_backbone("efficientnet_lite0", "imagenet")


def test_models_cli_lists_the_weights(tmp_path):
    import json

    from scrnet.cli import main

    assert main(["models", "--json", str(tmp_path / "m.json")]) == 0
    listed = json.loads((tmp_path / "m.json").read_text())["weights"]
    assert [w["name"] for w in listed] == [w.name for w in IMAGENET_WEIGHTS.values()]
    assert all({"sha256", "hash_prefix", "categories", "num_params", "gmacs", "metrics", "license"} <= set(w)
               for w in listed)
