"""The iteration-based batch sampler."""

import pytest

from scrnet.data.sampler import IterationBatchSampler


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
