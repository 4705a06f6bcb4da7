#!/usr/bin/env bash
set -u
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/tests PYTHONUNBUFFERED=1
timeout 60 python3 -m pytest -q -p no:cacheprovider -m gpu tests/gpu 2>&1 | tail -3
python3 -m scrnet data synth /tmp/synth --num-train 4 --num-val 2 --size 64 128 >/dev/null 2>&1
printf 'model:\n  name: scrnet_r18\n' > /tmp/r.yaml
timeout 60 python3 -m torch.distributed.run --nproc_per_node 2 -m scrnet train /tmp/r.yaml --work-dir /tmp/tr data.type=folder data.root=/tmp/synth model.num_classes=9 train.device=cuda train.max_iters=2 2>&1 | grep "scrnet train" | sort | uniq | head -3
cd benchmarks && timeout 170 python3 gpu_check.py --only fps_compiled --json $OUT/gpu_check2.json 2>&1 | grep -v Warn | cut -c1-400 | tail -6
