"""``evaluate``'s per-image counts: kept on the device and read back in groups, they are each image's own counts and
add up to the split's."""

import numpy as np
import pytest
import torch

import scrnet.evaluation.evaluate as evaluate_module
import scrnet.evaluation.metric_set as metric_set
from scrnet import create_model
from scrnet.config import EvalConfig
from scrnet.data.build import open_source
from scrnet.data.dataset import SegmentationDataset
from scrnet.data.synthetic import generate_synthetic
from scrnet.data.transforms import EvalTransform, EvalTransformConfig, Normalize


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = generate_synthetic(tmp_path_factory.mktemp("data"), num_train=1, num_val=5, size=(64, 128), seed=0)
    dataset = SegmentationDataset(open_source("folder", root, "val"), EvalTransform(EvalTransformConfig()))
    torch.manual_seed(0)
    model = create_model("scrnet_r18", num_classes=9, channels=16, backbone_weights=None)
    return model, dataset, Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def run(setup, **kwargs):
    model, dataset, normalize = setup
    return evaluate_module.evaluate(model, dataset, torch.device("cpu"), EvalConfig(), normalize, **kwargs)


def test_per_image_counts_read_back_in_groups_are_each_images_own(setup, monkeypatch):
    monkeypatch.setattr(metric_set, "READBACK_IMAGES", 2)  # 5 images: two full groups and a remainder
    result = run(setup, keep_per_image=True)
    assert len(result.per_image) == 5
    m = result.confusion.matrix.numpy()
    assert np.array_equal(sum(c.tp for c in result.per_image), np.diagonal(m))
    assert np.array_equal(sum(c.gt for c in result.per_image), m.sum(1))
    assert np.array_equal(sum(c.pred for c in result.per_image), m.sum(0))
    assert np.array_equal(sum(c.inter for c in result.per_image), result.boundary.inter)
    assert np.array_equal(sum(c.union for c in result.per_image), result.boundary.union)
    assert np.array_equal(sum(c.boundary for c in result.per_image), result.published.biou)
    for i in (0, 3):  # an image of the first group and one of the second
        alone = run(setup, keep_per_image=True, rank=i, world_size=5)  # that one image only
        assert np.array_equal(alone.per_image[0].tp, result.per_image[i].tp)
        assert np.array_equal(alone.per_image[0].pred, result.per_image[i].pred)
        assert np.array_equal(alone.per_image[0].inter, result.per_image[i].inter)
        assert np.array_equal(alone.per_image[0].boundary, result.per_image[i].boundary)


def test_without_the_published_metrics_there_are_no_boundary_counts(setup):
    result = run(setup, keep_per_image=True, boundary_metrics=False, limit=2)
    assert [c.boundary for c in result.per_image] == [None, None]
    assert np.array_equal(sum(c.gt for c in result.per_image), result.confusion.matrix.numpy().sum(1))
