"""The training loss: cross-entropy with ignore label, OHEM, class weights, deep supervision; no host sync."""


import pytest
import torch
import torch.nn.functional as F

from scrnet.config import LossConfig
from scrnet.engine.losses import SegmentationLoss, total_loss
from scrnet.models import SegmentationOutput


def test_cross_entropy_ignores_255():
    logits = torch.randn(2, 3, 4, 5, requires_grad=True)
    target = torch.randint(0, 3, (2, 4, 5))
    target[0, 0] = 255
    loss = SegmentationLoss(LossConfig(), 3)(logits, target)
    keep = target != 255
    expected = torch.nn.functional.cross_entropy(logits.permute(0, 2, 3, 1)[keep], target[keep])
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("ohem", [False, True])
def test_all_ignored_crop_gives_zero_loss_with_a_graph(ohem):
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    loss = SegmentationLoss(LossConfig(ohem=ohem), 3)(logits, torch.full((1, 4, 4), 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_ohem_keeps_hard_pixels_and_at_least_min_kept():
    target = torch.zeros(1, 1, 10, dtype=torch.long)
    logits = torch.zeros(1, 2, 1, 10)
    logits[0, 0, 0] = torch.linspace(-3, 3, 10)  # probability of the true class rises left to right
    pixel = torch.nn.functional.cross_entropy(logits, target, reduction="none")[0, 0]
    prob = logits.softmax(1)[0, 0, 0]
    loss = SegmentationLoss(LossConfig(ohem=True, ohem_thresh=0.5, ohem_min_kept=0), 2)(logits, target)
    torch.testing.assert_close(loss, pixel[prob < 0.5].mean())
    loss = SegmentationLoss(LossConfig(ohem=True, ohem_thresh=0.01, ohem_min_kept=3), 2)(logits, target)
    torch.testing.assert_close(loss, pixel[:3].mean())  # the three hardest pixels


def test_class_weights_and_deep_supervision():
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4))
    weights = [1.0, 2.0, 0.5]
    loss = SegmentationLoss(LossConfig(class_weights=weights), 3)(logits, target)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, target, weight=torch.tensor(weights)))
    crit = SegmentationLoss(LossConfig(), 3)
    combined = total_loss(crit, SegmentationOutput(logits, [logits, logits]), target)
    torch.testing.assert_close(combined, crit(logits, target) * 1.8)
    with pytest.raises(ValueError, match="class_weights has 2 values for 3 classes"):
        SegmentationLoss(LossConfig(class_weights=[1.0, 2.0]), 3)


def ohem_reference(cfg, logits, target):
    """The previous implementation (kthvalue over the valid pixels, host synchronisations), as it was."""
    logits = logits.float()
    pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = target != 255
    prob = logits.softmax(1).gather(1, target.clamp(max=logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
    prob = prob.masked_fill(~valid, 1.0)
    threshold = cfg.ohem_thresh
    n_valid = int(valid.sum())
    if 0 < cfg.ohem_min_kept and n_valid > 0:
        threshold = max(threshold, float(prob[valid].kthvalue(min(cfg.ohem_min_kept, n_valid)).values))
    valid = valid & (prob <= threshold)
    return pixel[valid].mean() if valid.any() else logits.sum() * 0.0


@pytest.mark.parametrize("min_kept,thresh,ignored", [(100, 0.7, 8), (5000, 0.7, 8), (10 ** 6, 0.7, 8),
                                                     (50, 0.01, 0), (0, 0.7, 4), (300, 1.0, 30)])
def test_ohem_topk_equals_the_kthvalue_version(min_kept, thresh, ignored):
    g = torch.Generator().manual_seed(min_kept)
    logits = torch.randn(2, 7, 32, 32, generator=g) * 3
    target = torch.randint(0, 7, (2, 32, 32), generator=g)
    target[:, :ignored] = 255
    cfg = LossConfig(ohem=True, ohem_min_kept=min_kept, ohem_thresh=thresh)
    new = SegmentationLoss(cfg, 7)(logits, target)
    assert abs(float(new) - float(ohem_reference(cfg, logits, target))) < 1e-6


def test_loss_with_every_pixel_ignored_is_zero_with_a_graph():
    logits = torch.randn(1, 3, 4, 4, requires_grad=True)
    for ohem in (False, True):
        loss = SegmentationLoss(LossConfig(ohem=ohem), 3)(logits, torch.full((1, 4, 4), 255))
        assert float(loss.detach()) == 0.0
        loss.backward()


def test_the_ohem_floor_belongs_to_the_global_batch():
    """1 x 16 images and 2 x 8 (two processes, or two micro-batches) keep the same number of pixels: each part keeps
    its share of ohem_min_kept (here the threshold keeps nothing, so the floor decides alone)."""
    from scrnet.engine.losses import min_kept

    torch.manual_seed(0)
    logits, target = torch.randn(16, 5, 8, 8), torch.randint(0, 5, (16, 8, 8))
    crit = SegmentationLoss(LossConfig(ohem=True, ohem_thresh=1e-9, ohem_min_kept=600), 5)
    valid = target != 255

    def kept(lo, hi, share):
        return int(crit._hard(logits[lo:hi], target[lo:hi], valid[lo:hi], min_kept(600, share)).sum())

    assert kept(0, 16, 1.0) == 600
    assert kept(0, 8, 0.5) + kept(8, 16, 0.5) == 600
    assert sum(kept(i, i + 4, 0.25) for i in range(0, 16, 4)) == 600
    assert min_kept(100000, 1 / 3) == 33333 and min_kept(5, 0.5) == 3  # rounded half up


def test_micro_batches_weighted_by_their_pixels_sum_to_the_whole_batch_loss():
    torch.manual_seed(1)
    logits, target = torch.randn(4, 3, 6, 6), torch.randint(0, 3, (4, 6, 6))
    target[0, :3] = 255  # micro-batches with different numbers of valid pixels
    for weights in (None, [1.0, 2.0, 0.5]):
        crit = SegmentationLoss(LossConfig(class_weights=weights), 3)
        whole = crit(logits, target)
        parts = [(crit(logits[i:i + 2], target[i:i + 2]), crit.pixel_weight(target[i:i + 2])) for i in (0, 2)]
        total = sum(w for _, w in parts)
        torch.testing.assert_close(sum(loss * w / total for loss, w in parts), whole)
