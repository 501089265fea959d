"""Inference benchmark: speed, memory and agreement of the ways to run a lungseg model.

    python benchmarks/inference.py --images DIR [--model FILE] [--batches 1 8] [--repeat 20]

For the model (default: the shipped one) at its input size and each batch size it measures
ms/image, images/s, peak RSS and the mask Dice against fp32 PyTorch for

    torch_fp32             plain SMP model, NCHW (the reference)
    torch_channels_last    same weights, channels_last memory format
    torch_bf16_cl          CPU bf16 autocast, channels_last (default where AVX-512 BF16/AMX)
    ort_fp32 / ort_int8    ONNX Runtime on `lungseg export` files (int8: static, calibrated)
    cuda_*                 on a GPU only: fp32, fp16 and bf16 autocast with channels_last
                           (+ torch.compile with --compile)

every variant has the same contract as a lungseg runner: numpy Nx1xSxS -> probabilities NxSxS
(host<->device copies included), in its own process so its peak RSS is its own (rss_imports_mb:
after imports, before the model; ORT processes import onnxruntime and numpy only). Then
end-to-end folder throughput as `lungseg predict` does it (decode + preprocess + model +
post-process + writing mask and overlay PNGs) on --images.

The floor: GFLOPs per image counted by torch.utils.flop_counter.FlopCounterMode (convolutions
and matmuls, multiply-add = 2) over the measured rate of a large fp32 torch.mm on this machine;
floor% = floor_ms / measured ms. int8, fp16 and bf16 kernels can beat the fp32 floor (>100%).
Prints a table and writes JSON (default benchmarks/results/inference.json). The measuring (the
child processes' workers, the floor, the machine) is in inference_measure.py beside it, the
table and end-to-end lines as printed in inference_table.py.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from inference_measure import floor, machine  # beside this file (sys.path[0] for a script)
from inference_table import e2e_lines, e2e_ratios, table, variant_floor_ms

from lungseg.runners import cpu_has_bf16

HERE = Path(__file__).resolve().parent
MEASURE = HERE / "inference_measure.py"  # what the child processes run
CPU_VARIANTS = ["torch_fp32", "torch_channels_last", "torch_bf16_cl", "ort_fp32", "ort_int8"]
CUDA_VARIANTS = ["cuda_fp32_cl", "cuda_fp16_cl", "cuda_bf16_cl"]


def _spawn(kind: str, spec: dict, tmp: Path, threads: int | None) -> dict | None:
    """Run inference_measure.py --worker/--e2e on `spec` in a fresh process; its JSON result."""
    path = tmp / f"{kind}_{spec.get('variant') or spec.get('name')}.json"
    path.write_text(json.dumps(spec))
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, str(MEASURE), f"--{kind}", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"  ! {path.stem} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _variant(text: str) -> str:
    """argparse type: a variant name inference_measure.py knows how to run (a typo was timed
    under its own name, or dropped)."""
    if re.fullmatch(r"ort_(fp32|int8)|(torch|cuda)_((fp32|fp16|bf16)(_cl)?|cl|channels_last)"
                    r"(_compile)?", text):  # fmt: skip
        return text
    raise argparse.ArgumentTypeError(f"unknown variant {text!r}")


def prepare_onnx(args, model: Path, tmp: Path) -> dict[str, Path | None]:
    """fp32 and int8 .onnx files: reused from --onnx DIR when there, else exported (to DIR)."""
    from lungseg.export import export_onnx
    from lungseg.files import file_sha256
    from lungseg.model import file_metadata

    folder = Path(args.onnx) if args.onnx else tmp
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path | None] = {
        "ort_fp32": folder / f"{model.stem}.onnx",
        "ort_int8": folder / f"{model.stem}_int8.onnx",
    }
    calib = args.int8_calib or args.images
    for variant, path in files.items():
        made_from = file_metadata(path).get("lungseg_source_sha256") if path.is_file() else None
        if made_from == file_sha256(model):  # (the stem alone: every run's model.safetensors)
            print(f"reusing {path}")
            continue
        if path.is_file():
            print(f"{path} was not exported from {model}: exported again")
        int8 = variant == "ort_int8"
        if int8 and not calib:
            print("no --int8-calib or --images: skipping ort_int8")
            files[variant] = None
            continue
        print(f"exporting {path.name} ...")
        export_onnx(
            model,
            path,
            int8=int8,
            calib=calib if int8 else None,
            check=args.images,
            calib_limit=args.calib_limit,
        )
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="model file (.safetensors/.ckpt; default: the shipped model)")
    p.add_argument("--images", help="folder of radiographs: Dice inputs, end-to-end, calibration")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    p.add_argument("--repeat", type=int, default=20, help="timed calls per batch size")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, help="CPU threads (torch and ORT); default: theirs")
    p.add_argument("--variants", nargs="+", type=_variant, help=f"of {CPU_VARIANTS + CUDA_VARIANTS}"
                   ", torch_cl, and any of them + _compile")  # fmt: skip
    compiled = "on CUDA also time torch.compile (CPU: --variants torch_cl_compile)"
    p.add_argument("--compile", action="store_true", help=compiled)
    p.add_argument("--onnx", help="folder with <stem>.onnx / <stem>_int8.onnx to reuse (or fill)")
    p.add_argument("--int8-calib", help="calibration folder for int8 (default: --images)")
    p.add_argument("--calib-limit", type=int, default=32, help="calibration images")
    p.add_argument("--check-images", type=int, default=16, help="images for Dice vs fp32")
    p.add_argument("--e2e-limit", type=int, default=64, help="images for end-to-end (0: skip)")
    p.add_argument(
        "--e2e-repeat",
        type=int,
        default=4,
        help="each end-to-end film this many times (linked under new names): steady-state "
        "throughput, as on a large folder, not mostly the pipeline filling and draining",
    )
    p.add_argument("--e2e-batch", type=int, default=4, help="predict batch size")
    p.add_argument("--e2e-workers", type=int, help="predict's threads (default: predict's own)")
    p.add_argument("--mm-size", type=int, default=2048, help="matmul size for the fp32 rate")
    p.add_argument("--out", default=str(HERE / "results" / "inference.json"))
    args = p.parse_args(argv)

    import torch

    from lungseg.export import find_images, model_inputs
    from lungseg.model import DEFAULT_WEIGHTS, load_model

    model = Path(args.model) if args.model else DEFAULT_WEIGHTS
    _, config = load_model(model)  # fails early with a clear message
    cpu = [v for v in CPU_VARIANTS if v != "torch_bf16_cl" or cpu_has_bf16()]  # else emulated
    variants = args.variants or cpu + (
        CUDA_VARIANTS + ["cuda_bf16_cl_compile"] * args.compile if torch.cuda.is_available() else []
    )
    report: dict = {"machine": machine(), "model": {"path": str(model), **vars(config)}}
    report["settings"] = dict(vars(args))
    report["notes"] = [
        "ms_per_image: median call time / batch; a call maps numpy inputs to numpy probabilities",
        "rss_peak_mb: VmHWM of the variant's own process (rss_imports_mb: before model load)",
        "floor: FlopCounterMode FLOPs / fp32 torch.mm rate (CPU, bf16 too; CUDA: its dtype's)",
        "Dice: masks at the model threshold vs torch_fp32 on the --check-images inputs",
        "int8 calibration images default to --images, so they may overlap the Dice inputs",
        "e2e: lungseg.predict.predict_paths (decode, preprocess, model, post-process, PNGs) on "
        "--e2e-limit films, each linked --e2e-repeat times",
    ]
    with tempfile.TemporaryDirectory(prefix="lungseg-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if args.images:
            pool = model_inputs(find_images(args.images, args.check_images), config)
        else:
            print("no --images: timing and Dice on random inputs (Dice is then not meaningful)")
            rng = np.random.default_rng(0)
            pool = rng.random((args.check_images, 1, config.size, config.size), np.float32)
        np.save(tmp / "inputs.npy", pool)
        fl = floor(str(model), config.size, args.threads, args.mm_size)
        report["floor"] = fl
        print(
            f"{fl['gflops_per_image']:.2f} GFLOP/image; fp32 matmul {fl['matmul_gflops_per_s']:.1f}"
            f" GFLOP/s ({fl['torch_threads']} threads) -> floor {fl['floor_ms']:.2f} ms/image"
        )
        onnx = prepare_onnx(args, model, tmp) if any(v.startswith("ort") for v in variants) else {}
        base = {
            "model": str(model),
            "inputs": str(tmp / "inputs.npy"),
            "threads": args.threads,
            "batches": args.batches,
            "repeat": args.repeat,
            "warmup": args.warmup,
            "threshold": config.threshold,
        }
        ref = str(tmp / "ref.npy")
        results = []
        for v in ["torch_fp32"] + [v for v in variants if v != "torch_fp32"]:
            if v.startswith("ort") and not onnx.get(v):
                continue
            spec = {
                **base,
                "variant": v,
                "onnx": str(onnx.get(v)),
                **({"save_ref": ref} if v == "torch_fp32" else {"ref": ref}),
            }
            print(f"timing {v} ...", flush=True)
            r = _spawn("worker", spec, tmp, args.threads)
            if r:
                r["floor_ms"] = variant_floor_ms(v, fl)
                for m in r["batches"].values():
                    m["floor_share"] = r["floor_ms"] / m["ms_per_image"]
                results.append(r)
        report["variants"] = results
        report["e2e"] = []
        if args.images and args.e2e_limit:
            films = tmp / "e2e_films"
            films.mkdir()
            files, chosen = [], find_images(args.images, args.e2e_limit)
            for k in range(max(1, args.e2e_repeat)):
                for i, f in enumerate(chosen):  # (names unique across sub-folders too)
                    (films / f"{k}_{i:05d}_{f.name}").symlink_to(f.resolve())
                    files.append(str(films / f"{k}_{i:05d}_{f.name}"))
            e2e_models = {
                "predict_torch": model,
                "predict_torch_bf16": model if "torch_bf16_cl" in variants else None,
                "predict_ort_fp32": onnx.get("ort_fp32"),
                "predict_ort_int8": onnx.get("ort_int8"),
            }
            for name, m in e2e_models.items():
                if m is None:
                    continue
                print(f"end-to-end {name} on {len(files)} images ...", flush=True)
                spec = {
                    "name": name,
                    "model": str(m),
                    "files": files,
                    "threads": args.threads,
                    "out": str(tmp / name),
                    "device": "cpu" if name.endswith("_bf16") else "auto",  # bf16: the CPU's
                    "precision": "bf16-mixed" if name.endswith("_bf16") else "auto",
                    "batch_size": args.e2e_batch,
                    "workers": args.e2e_workers,
                }
                r = _spawn("e2e", spec, tmp, args.threads)
                if r:
                    report["e2e"].append(r)
    print()
    print(table(report["variants"], fl))
    if report["e2e"]:
        print("\nend to end (decode + preprocess + model + post-process + write PNGs):")
        for r in report["e2e"]:
            r.update(e2e_ratios(r, report["variants"]))
            print(e2e_lines(r))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
