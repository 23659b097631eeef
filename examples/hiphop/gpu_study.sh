#!/usr/bin/env bash
# The full HIP-HOP-NN study on GPUs (not run yet: the machine this was written on has none).
#
#   bash examples/hiphop/gpu_study.sh            # one GPU, every run one after another
#   DEVICES=4 STRATEGY=ddp bash examples/hiphop/gpu_study.sh   # DDP over 4 GPUs per run
#
# Needs `pip install -e '.[hiphop,cuda]'` (CuPy runs optinv's CUDA kernels on CUDA tensors).
set -euo pipefail
cd "$(dirname "$0")/../.."
DEVICES="${DEVICES:-1}"
STRATEGY="${STRATEGY:-auto}"

python -m examples.hiphop.data --system methane --n 200000          # cached after the first time
python -m examples.hiphop.data --system ethanol --n 20000
# learning curves: 13 variants x 4 sizes (1k..64k, x64) x 3 seeds, early stopping (patience 25)
python -m examples.hiphop.study --preset full --accelerator gpu --devices "$DEVICES" --strategy "$STRATEGY" --threads 0
python -m examples.hiphop.study --preset full --plot
# time per step / inference on the CPU of that machine, for comparison with results/timing.json
python -m examples.hiphop.bench --out examples/hiphop/results/timing_gpu_host.json
