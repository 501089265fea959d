"""The measuring half of benchmarks/inference.py (which starts it and prints the results).

Run in a child process, one per variant, so that its peak RSS is its own:

    python benchmarks/inference_measure.py --worker SPEC.json   # time one variant: worker()
    python benchmarks/inference_measure.py --e2e SPEC.json      # `lungseg predict`: e2e_worker()

SPEC.json is written by inference.py; the result is printed as one JSON line on stdout. Only
numpy and the standard library are imported at the top, so an ORT worker's process holds
onnxruntime and numpy (no torch) when rss_imports_mb is read. floor() and machine() are called
in the parent, inference.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np


def peak_rss_mb() -> float:
    """Peak resident set size of this program so far (MB): VmHWM where /proc exists (getrusage
    would keep the parent's peak across fork + exec on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


# ---------------------------------------------------------------- worker (one variant per process)


def _torch_runner(variant: str, model: str):
    import torch

    from lungseg.model import load_model

    net, _ = load_model(model)
    cuda = variant.startswith("cuda")
    device = torch.device("cuda" if cuda else "cpu")
    cl = variant.endswith("_cl") or variant.endswith("_compile") or variant == "torch_channels_last"
    fmt = torch.channels_last if cl else torch.contiguous_format
    net = net.to(device, memory_format=fmt)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(variant.split("_")[1])
    if variant.endswith("_compile"):
        net = torch.compile(net)

    def run(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(x).to(device).contiguous(memory_format=fmt)
        with torch.inference_mode(), torch.autocast(device.type, dtype, enabled=dtype is not None):
            logits = net(t)
        return torch.sigmoid(logits.float())[:, 0].cpu().numpy()

    sync = torch.cuda.synchronize if cuda else (lambda: None)
    return run, sync


def _ort_runner(onnx_path: str, threads: int | None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    session = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(x: np.ndarray) -> np.ndarray:
        logits = session.run(None, {name: x})[0]
        return (1 / (1 + np.exp(-logits[:, 0]))).astype(np.float32)

    return run, lambda: None


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    inter, total = np.count_nonzero(a & b), np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2 * inter / total


def worker(spec: dict) -> dict:
    """Time one variant on the shared inputs; compare with the reference probabilities."""
    variant, threads = spec["variant"], spec["threads"]
    if not variant.startswith("ort"):
        import torch

        if threads:
            torch.set_num_threads(threads)
    rss_imports = peak_rss_mb()
    if variant.startswith("ort"):
        run, sync = _ort_runner(spec["onnx"], threads)
    else:
        run, sync = _torch_runner(variant, spec["model"])
    pool = np.load(spec["inputs"])
    out: dict = {"variant": variant, "rss_imports_mb": round(rss_imports, 1), "batches": {}}
    for b in spec["batches"]:
        x = np.ascontiguousarray(np.resize(pool, (b, *pool.shape[1:])))
        for _ in range(spec["warmup"]):
            run(x)
        sync()
        times = []
        cpu0 = time.process_time()
        for _ in range(spec["repeat"]):
            t0 = time.perf_counter()
            run(x)
            sync()
            times.append(time.perf_counter() - t0)
        ms = 1000 * float(np.median(times)) / b
        out["batches"][str(b)] = {
            "ms_per_image": ms,
            "images_per_s": 1000 / ms,
            "ms_per_image_min": 1000 * min(times) / b,
            # CPU time of all threads (user + system) per image
            "cpu_ms_per_image": 1000 * (time.process_time() - cpu0) / (spec["repeat"] * b),
        }
    step = max(spec["batches"])
    prob = np.concatenate([run(pool[i : i + step]) for i in range(0, len(pool), step)])
    if spec.get("save_ref"):
        np.save(spec["save_ref"], prob)
    ref = np.load(spec["ref"]) if spec.get("ref") else prob
    t = spec["threshold"]
    dice = [_dice(p >= t, r >= t) for p, r in zip(prob, ref, strict=True)]
    out.update(
        dice_mean=float(np.mean(dice)),
        dice_min=float(np.min(dice)),
        max_abs_prob_diff=float(np.abs(prob - ref).max()),
    )
    if not variant.startswith(("ort", "torch")):
        import torch

        out["cuda_peak_mem_mb"] = torch.cuda.max_memory_allocated() / 2**20
    out["rss_peak_mb"] = round(peak_rss_mb(), 1)
    return out


def e2e_worker(spec: dict) -> dict:
    """`lungseg predict` on a list of files with the given model file; wall time and peak RSS."""
    from lungseg.pipeline import pool_size
    from lungseg.predict import predict_paths
    from lungseg.segmenter import Segmenter

    if spec["threads"]:
        import torch

        torch.set_num_threads(spec["threads"])
    seg = Segmenter(spec["model"], device=spec["device"], precision=spec.get("precision", "auto"))
    if spec["threads"] and hasattr(seg.runner, "session"):  # rebuild the session with N threads
        from lungseg.runners import OnnxRunner

        seg.runner = OnnxRunner(spec["model"], threads=spec["threads"])
    files, out = spec["files"], spec["out"]
    kw = {"batch_size": spec["batch_size"], "workers": spec["workers"], "segmenter": seg}
    predict_paths(files[:2], str(Path(out) / "warmup"), **kw)
    t0, cpu0 = time.perf_counter(), time.process_time()
    failed = predict_paths(files, str(Path(out) / "run"), **kw)
    wall = time.perf_counter() - t0
    n = len(files) - len(failed)
    cpu_ms = 1000 * (time.process_time() - cpu0) / max(n, 1)
    return {
        "variant": spec["name"],
        "images": n,
        "seconds": wall,
        "images_per_s": n / wall,
        "ms_per_image": 1000 * wall / max(n, 1),
        "cpu_ms_per_image": cpu_ms,
        "device": str(getattr(seg.runner, "device", "cpu")),  # ONNX Runtime: CPU here
        "rss_peak_mb": round(peak_rss_mb(), 1),
        "batch_size": spec["batch_size"],
        "workers": pool_size(spec["workers"]),  # as predict_paths resolves it
    }


# ---------------------------------------------------------------- floor and machine (parent)


def floor(model: str, size: int, threads: int | None, mm: int) -> dict:
    """GFLOPs per image (FlopCounterMode) and the fp32 matmul rate of this machine."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from lungseg.model import load_model

    if threads:
        torch.set_num_threads(threads)
    net, _ = load_model(model)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        net(torch.rand(1, 1, size, size))
    gflops = counter.get_total_flops() / 1e9
    a, b = torch.randn(mm, mm), torch.randn(mm, mm)
    torch.mm(a, b)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - t0)
    rate = 2 * mm**3 / min(times) / 1e9
    out = {
        "gflops_per_image": gflops,
        "matmul_gflops_per_s": rate,
        "matmul_size": mm,
        "torch_threads": torch.get_num_threads(),
        "floor_ms": 1000 * gflops / rate,
    }
    if torch.cuda.is_available():
        rates = {}
        for dt in (torch.float32, torch.bfloat16, torch.float16):
            x = torch.randn(8192, 8192, device="cuda", dtype=dt)
            y = torch.randn_like(x)
            torch.mm(x, y)
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(10):
                torch.mm(x, y)
            torch.cuda.synchronize()
            rates[str(dt).split(".")[1]] = 2 * 8192**3 * 10 / (time.perf_counter() - t0) / 1e9
        out["cuda_matmul_gflops_per_s"] = rates
    return out


def machine() -> dict:
    """Platform, CPU model and SIMD flags, library versions and the GPU, if any."""
    info = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        text = Path("/proc/cpuinfo").read_text()
        flags = next(line for line in text.splitlines() if line.startswith("flags")).split()
        info["cpu"] = next(
            ln.split(":", 1)[1].strip() for ln in text.splitlines() if ln.startswith("model name")
        )
        info["simd"] = sorted(
            f
            for f in flags
            if f
            in {
                "avx",
                "avx2",
                "fma",
                "avx512f",
                "avx512_vnni",
                "avx_vnni",
                "amx_int8",
                "amx_bf16",
                "avx512_bf16",
            }
        )
    except (OSError, StopIteration):
        pass
    for mod in ("torch", "onnxruntime", "segmentation_models_pytorch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            info[mod] = None
    import torch

    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name()
    return info


# ---------------------------------------------------------------- child entry point


def main(argv: list[str] | None = None) -> int:
    """Run one worker on a spec file written by inference.py; print its result as a JSON line."""
    p = argparse.ArgumentParser(description="child process of benchmarks/inference.py")
    kind = p.add_mutually_exclusive_group(required=True)
    kind.add_argument("--worker", metavar="SPEC", help="time one variant (JSON spec file)")
    kind.add_argument("--e2e", metavar="SPEC", help="end-to-end `lungseg predict` (JSON spec)")
    args = p.parse_args(argv)
    spec = json.loads(Path(args.worker or args.e2e).read_text())
    print(json.dumps(worker(spec) if args.worker else e2e_worker(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
