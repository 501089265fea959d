#!/usr/bin/env bash
# Runs ON a lent GPU machine (docs/gpu.md, "Benchmarking on the GPU"), from the repository root
# with the shipped weights in the tree and .device/whl carried: issue 4's GPU variants. Needs no
# data: the films are the project's own phantoms (1024 px, 24 of them, made here). Leaves
# inference_gpu.json and inference_gpu.log in $OUT. Extra arguments go to benchmarks/inference.py.
#
#   tools/device_bench.sh [--compile] [--batches 1 8 32]
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .device/whl/segmentation_models_pytorch-*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
films=$(mktemp -d /tmp/lungseg_films.XXXX)
python3 -m lungseg.cli phantom --out "$films" -n "${PHANTOMS:-24}" --size 1024 > /dev/null
rm "$films"/*_mask.png  # the films only
variants="torch_fp32 torch_channels_last cuda_fp32_cl cuda_fp16_cl cuda_bf16_cl"
case " $* " in *" --compile "*) variants="$variants cuda_bf16_cl_compile" ;; esac
# shellcheck disable=SC2086  # (the variant names are words)
python3 benchmarks/inference.py --images "$films" --variants $variants \
    --out "$OUT/inference_gpu.json" "$@" 2>&1 | tee "$OUT/inference_gpu.log"
