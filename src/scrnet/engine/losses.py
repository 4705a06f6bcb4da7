"""Training losses: cross-entropy with ignore label, optional OHEM and class weights, deep supervision."""

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

IGNORE = 255


@dataclass
class LossConfig:
    ohem: bool = False  # online hard example mining (PSPNet/SFNet style)
    ohem_thresh: float = 0.7  # keep pixels whose ground-truth probability is below this ...
    ohem_min_kept: int = 100000  # ... and at least this many of the hardest pixels per process and batch
    class_weights: Optional[list[float]] = None  # per-class weights of the cross-entropy

    def __post_init__(self):
        if not 0 < self.ohem_thresh <= 1:
            raise ValueError(f"train.loss.ohem_thresh must be in (0, 1], got {self.ohem_thresh}")
        if self.ohem_min_kept < 0:
            raise ValueError(f"train.loss.ohem_min_kept must be >= 0, got {self.ohem_min_kept}")


class SegmentationLoss(torch.nn.Module):
    """``loss(logits B x K x H x W, target B x H x W)``; a batch whose pixels are all ignored gives 0 (with a graph)."""

    def __init__(self, cfg: LossConfig, num_classes: int):
        super().__init__()
        self.cfg = cfg
        weights = cfg.class_weights
        if weights is not None and len(weights) != num_classes:
            raise ValueError(f"train.loss.class_weights has {len(weights)} values for {num_classes} classes")
        self.register_buffer("weight", torch.tensor(weights, dtype=torch.float32) if weights else None)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        pixel_loss = F.cross_entropy(logits, target, weight=self.weight, ignore_index=IGNORE, reduction="none")
        valid = target != IGNORE
        if self.cfg.ohem:
            valid = valid & self._hard(logits, target, valid)
        if not valid.any():
            return logits.sum() * 0.0
        if self.weight is None:
            return pixel_loss[valid].mean()
        # weighted mean, as F.cross_entropy's: divide by the kept pixels' weights
        return pixel_loss[valid].sum() / self.weight[target[valid]].sum()

    @torch.no_grad()
    def _hard(self, logits: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        prob = logits.softmax(1).gather(1, target.clamp(max=logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
        prob = prob.masked_fill(~valid, 1.0)
        threshold = self.cfg.ohem_thresh
        n_valid = int(valid.sum())
        if 0 < self.cfg.ohem_min_kept and n_valid > 0:
            k = min(self.cfg.ohem_min_kept, n_valid)
            kth = prob[valid].kthvalue(k).values
            threshold = max(threshold, float(kth))
        return prob <= threshold  # at least the min_kept hardest pixels, and every pixel below ohem_thresh


def total_loss(criterion: SegmentationLoss, outputs: dict, target: torch.Tensor, aux_weight: float) -> torch.Tensor:
    """Main loss plus ``aux_weight`` times each deep-supervision loss."""
    loss = criterion(outputs["out"], target)
    for aux in outputs.get("aux", []):
        loss = loss + aux_weight * criterion(aux, target)
    return loss
