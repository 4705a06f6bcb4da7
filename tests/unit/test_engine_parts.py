"""Loss, schedule, sampler and metric contracts of the training engine."""

import math

import pytest
import torch

from scrnet.config import LossConfig, OptimConfig
from scrnet.data.sampler import IterationBatchSampler
from scrnet.engine.losses import SegmentationLoss, total_loss
from scrnet.engine.schedule import PolyWarmup, build_optimizer, build_scheduler, param_groups
from scrnet.evaluation.metrics import ConfusionMatrix
from scrnet.models import SegmentationOutput, create_model


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


def test_poly_schedule_with_warmup():
    rule = PolyWarmup(max_iters=100, power=0.9, warmup_iters=10, warmup_ratio=0.1, min_ratio=0.0)
    assert rule(0) == pytest.approx(0.1)
    assert rule(5) == pytest.approx((1 - 0.05) ** 0.9 * (0.1 + 0.9 * 0.5))
    assert rule(50) == pytest.approx(0.5 ** 0.9)
    assert rule(100) == 0.0
    assert PolyWarmup(100, 1.0, 0, 1.0, 0.1)(100) == pytest.approx(0.1)


def test_param_groups_head_multiplier_and_no_decay_on_norms_and_biases():
    model = create_model("fpn_r18", num_classes=3)
    cfg = OptimConfig(lr=0.01, weight_decay=5e-4, head_lr_mult=10.0)
    groups = {g["name"]: g for g in param_groups(model, cfg)}
    assert set(groups) == {"backbone", "backbone_no_decay", "head", "head_no_decay"}
    assert groups["head"]["lr"] == pytest.approx(0.1) and groups["backbone"]["lr"] == 0.01
    assert groups["backbone_no_decay"]["weight_decay"] == 0.0 and groups["head"]["weight_decay"] == 5e-4
    assert all(p.ndim <= 1 for p in groups["head_no_decay"]["params"])
    assert sum(len(g["params"]) for g in groups.values()) == len(list(model.parameters()))
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, max_iters=10)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.01 * 0.5 ** 0.9)


def test_sampler_is_a_pure_function_of_the_iteration_and_shards_ranks():
    ranks = [IterationBatchSampler(10, 4, rank=r, world_size=2, seed=1, max_iters=6) for r in range(2)]
    for it in range(6):
        a, b = ranks[0].batch(it), ranks[1].batch(it)
        assert len(a) == len(b) == 2 and not {i for _, i in a} & {i for _, i in b}
    epoch0 = [i for it in range(2) for r in ranks for _, i in r.batch(it)]
    assert len(set(epoch0)) == 8  # 2 batches of 4 per epoch of 10 (last partial batch dropped), no repeats
    assert ranks[0].batch(2)[0][0] == 1  # iteration 2 is epoch 1
    resumed = IterationBatchSampler(10, 4, rank=0, world_size=2, seed=1, start_iter=3, max_iters=6)
    assert list(resumed) == [ranks[0].batch(it) for it in range(3, 6)]
    with pytest.raises(ValueError, match=r"train.batch_size \(5\) must be divisible by the number of processes"):
        IterationBatchSampler(10, 5, world_size=2)
    with pytest.raises(ValueError, match="has 3 samples, fewer than train.batch_size"):
        IterationBatchSampler(3, 4)


def test_confusion_matrix_miou_by_hand():
    target = torch.tensor([0, 0, 1, 1, 2, 255, 255])
    pred = torch.tensor([0, 1, 1, 1, 0, 2, 1])
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    assert cm.matrix.tolist() == [[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]
    iou = cm.iou()  # class 0: 1/(2+2-1); class 1: 2/(2+3-2); class 2: 0/(1+0-0); class 3: absent and never predicted
    assert iou[0] == pytest.approx(1 / 3) and iou[1] == pytest.approx(2 / 3) and iou[2] == 0.0 and iou[3] is None
    assert cm.miou() == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert cm.pixel_accuracy() == pytest.approx(3 / 5)
    cm.update(torch.tensor([0]), torch.tensor([7]))  # recorded on the device, raised when the matrix is read
    with pytest.raises(ValueError, match=r"labels outside 0..3 .*\[7\]"):
        cm.miou()
    assert math.isnan(ConfusionMatrix(2).miou())
