#!/usr/bin/env bash
# Runs ON a lent GPU machine (docs/gpu.md), from the repository root, with .device/ carried there
# (made by tools/device_pack.py). Installs the carried wheels, trains on the packed train/val
# films and leaves in $OUT: the training log, metrics.csv, config.json, and the model as
# model.safetensors.part00, 01, ... with model.safetensors.sha256 (the machine returns files of
# at most 16 MiB; join them with `cat model.safetensors.part* > model.safetensors` and check
# with `sha256sum -c model.safetensors.sha256`).
#
#   tools/device_train.sh --size 512 --epochs 50 --max-minutes 7 [other `lungseg train` options]
set -euo pipefail
# the pack holds films resized for one size and fit: training at another would not get the inputs
# the protocol means (at a larger size, enlarged films), so refuse before anything else
python3 - "$@" <<'EOF'
import argparse, json, sys
p = argparse.ArgumentParser(add_help=False)
p.add_argument("--size", type=int, default=512)  # lungseg train's defaults
p.add_argument("--fit", default="letterbox")
a, _ = p.parse_known_args(sys.argv[1:])
pack = json.load(open(".device/data/pack.json"))
if (a.size, a.fit) != (pack["size"], pack["fit"]):
    sys.exit(f"--size {a.size} --fit {a.fit}, but .device/data was packed at size {pack['size']} "
             f"fit {pack['fit']}: repack with tools/device_pack.py --size {a.size} --fit {a.fit}")
EOF
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    .device/whl/*.whl
export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
python3 -c "import torch, lightning, segmentation_models_pytorch as smp, albumentations as A; \
print('torch', torch.__version__, 'lightning', lightning.__version__, 'smp', smp.__version__, \
'albumentations', A.__version__, 'cuda', torch.cuda.is_available())"
run=$(mktemp -d /tmp/lungseg_run.XXXX)  # fresh: a warm machine keeps /tmp between calls
workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 0 ))
status=0
python3 -m lungseg.cli train --data .device/data --out "$run" --device "${DEVICE:-cuda}" \
    --workers "$workers" "$@" > "$OUT/train.log" 2>&1 || status=$?
tail -n 5 "$OUT/train.log"
cp "$run/metrics.csv" "$run/config.json" "$OUT/" 2>/dev/null || true
if [ -f "$run/model.safetensors" ]; then
    split -b 15M -d "$run/model.safetensors" "$OUT/model.safetensors.part"
    (cd "$run" && sha256sum model.safetensors > "$OUT/model.safetensors.sha256")
fi
exit "$status"
