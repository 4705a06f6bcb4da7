"""Training losses: cross-entropy with ignore label, optional OHEM and class weights, deep supervision."""

import torch
import torch.nn.functional as F

from ..config import LossConfig
from ..errors import ConfigError
from ..models import SegmentationOutput

IGNORE = 255


class SegmentationLoss(torch.nn.Module):
    """``loss(logits B x K x H x W, target B x H x W)``; a batch whose pixels are all ignored gives 0 (with a graph)."""

    def __init__(self, cfg: LossConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        weights = cfg.class_weights
        if weights is not None and len(weights) != num_classes:
            raise ConfigError(f"train.loss.class_weights has {len(weights)} values for {num_classes} classes")
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32) if weights else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, share: float = 1.0) -> torch.Tensor:
        """The mean loss over the kept pixels. ``share``: the part of the global batch (``train.batch_size`` images
        over all processes and micro-batches) these images are; OHEM keeps at least that share of
        ``ohem_min_kept``. No host synchronisation: masks and sums stay on the device (no boolean indexing, no
        ``.item()``)."""
        logits = logits.float()
        target = target.long()
        pixel_loss = F.cross_entropy(logits, target, weight=self.weight, ignore_index=IGNORE, reduction="none")
        valid = target != IGNORE
        if self.cfg.ohem:
            valid = valid & self._hard(logits, target, valid, min_kept(self.cfg.ohem_min_kept, share))
        kept = valid.to(pixel_loss.dtype)
        if self.weight is None:
            denominator = kept.sum()
        else:  # weighted mean, as F.cross_entropy's: divide by the kept pixels' weights
            denominator = (self.weight[target.clamp(0, logits.shape[1] - 1)] * kept).sum()
        # a batch with no kept pixel gives 0 (with a graph): the numerator is then 0 too
        return (pixel_loss * kept).sum() / denominator.clamp(min=torch.finfo(pixel_loss.dtype).tiny)

    def pixel_weight(self, target: torch.Tensor) -> torch.Tensor:
        """What the loss of ``target``'s pixels is divided by without OHEM: the number of valid pixels, or the sum
        of their class weights (a 0-d tensor on the device). Micro-batches weighted by it sum to the loss of the
        whole batch."""
        target = target.long()
        valid = (target != IGNORE).to(torch.float32)
        if self.weight is None:
            return valid.sum()
        return (self.weight[target.clamp(0, self.weight.numel() - 1)] * valid).sum()

    @torch.no_grad()
    def _hard(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor, floor: int) -> torch.Tensor:
        """Pixels to keep: every valid pixel whose ground-truth probability is <= ``ohem_thresh``, and at least the
        ``floor`` hardest valid pixels (all of them when fewer are valid).

        The k-th smallest valid probability comes from one ``topk`` over the batch with invalid pixels set above
        every probability, read at index ``min(k, n_valid) - 1`` on the device: no ``kthvalue`` (a single CUDA
        block over the whole batch) and no host synchronisation.
        """
        prob = logits.softmax(1).gather(1, target.clamp(0, logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        threshold = torch.full((), self.cfg.ohem_thresh, dtype=prob.dtype, device=prob.device)
        k = min(floor, prob.numel())
        if k > 0:
            flat = prob.masked_fill(~valid, 2.0).flatten()  # invalid pixels sort after every probability
            smallest = flat.topk(k, largest=False, sorted=True).values
            n_valid = valid.sum()
            index = (torch.clamp(n_valid, max=k) - 1).clamp(min=0)
            kth = smallest.gather(0, index.reshape(1)).squeeze(0)
            threshold = torch.where(n_valid > 0, torch.maximum(threshold, kth), threshold)
        return prob <= threshold


def min_kept(floor: int, share: float) -> int:
    """The OHEM floor of a part of the global batch: ``floor`` times ``share``, rounded half up (1 x 16 images and
    2 x 8 keep the same number in total)."""
    return int(floor * share + 0.5)


def total_loss(criterion: SegmentationLoss, outputs: SegmentationOutput, target: torch.Tensor,
               share: float = 1.0) -> torch.Tensor:
    """Main loss plus ``train.loss.aux_weight`` times each deep-supervision loss; ``share``: see
    :meth:`SegmentationLoss.forward`."""
    loss = criterion(outputs.out, target, share)
    for aux in outputs.aux:
        loss = loss + criterion.cfg.aux_weight * criterion(aux, target, share)
    return loss
