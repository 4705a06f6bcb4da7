"""Iteration-based sampling that is a pure function of the iteration number, so a resumed run continues exactly.

Each epoch is a permutation of the data set seeded by ``(seed, epoch)`` cut into global batches (the last partial
batch is dropped); iteration ``it`` takes global batch ``it % batches_per_epoch`` of epoch
``it // batches_per_epoch``, and each rank takes its contiguous share of it (the distributed sharding of a
DistributedSampler). Items are ``(epoch, index)`` pairs: the data set seeds its augmentation with them.
"""

import numpy as np
import torch

from ..errors import ConfigError


class IterationBatchSampler(torch.utils.data.Sampler):
    def __init__(self, num_samples: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start_iter: int = 0, max_iters: int = 0, shuffle: bool = True):
        if global_batch % world_size:
            raise ConfigError(f"train.batch_size ({global_batch}) must be divisible by the number of processes "
                             f"({world_size})")
        if num_samples < global_batch:
            raise ConfigError(f"the training split has {num_samples} samples, fewer than train.batch_size "
                             f"({global_batch})")
        self.num_samples, self.global_batch = num_samples, global_batch
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.start_iter, self.max_iters, self.shuffle = start_iter, max_iters, shuffle
        self.per_rank = global_batch // world_size
        self.batches_per_epoch = num_samples // global_batch
        self._epoch, self._order = -1, None

    def batch(self, it: int) -> list[tuple[int, int]]:
        epoch, pos = divmod(it, self.batches_per_epoch)
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._order = rng.permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)
            self._epoch = epoch
        start = pos * self.global_batch + self.rank * self.per_rank
        return [(epoch, int(i)) for i in self._order[start:start + self.per_rank]]

    def __iter__(self):
        for it in range(self.start_iter, self.max_iters):
            yield self.batch(it)

    def __len__(self) -> int:
        return max(self.max_iters - self.start_iter, 0)
