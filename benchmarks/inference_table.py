"""The results half of benchmarks/inference.py, as it prints them: the model-only table with each
variant's floor share, and the end-to-end lines with their ratios over the model-only runs.

Pure functions on the result dicts (no torch, no processes); inference.py imports them by plain
module name (benchmarks/ is sys.path[0] for a script).
"""

from __future__ import annotations


def variant_floor_ms(variant: str, fl: dict) -> float:
    """The floor for a variant: FLOPs over the matmul rate of its device and precision."""
    if not variant.startswith("cuda"):
        return fl["floor_ms"]
    dtype = {"fp16": "float16", "bf16": "bfloat16"}.get(variant.split("_")[1], "float32")
    return 1000 * fl["gflops_per_image"] / fl["cuda_matmul_gflops_per_s"][dtype]


E2E_MODEL = {  # predict's runner -> the model-only variant that runs the same way
    "predict_torch": "torch_channels_last",
    "predict_torch_bf16": "torch_bf16_cl",
    "predict_ort_fp32": "ort_fp32",
    "predict_ort_int8": "ort_int8",
}


def e2e_ratios(e2e: dict, variants: list[dict]) -> dict:
    """End-to-end ms/image over the same runner's model-only ms/image at each measured batch
    (issue 4: within 1.2x); `predict` itself runs at `e2e['batch_size']`. `cpu_vs_model`: the
    same for CPU time per image (all threads): the ratio end to end can reach when the work
    outside the model is hidden in idle time only as well as the model alone uses the cores.
    `model_variant`: the variant they are over (torch_fp32 when torch_channels_last was not
    measured); None, and no ratios, when no model-only run of that runtime was measured."""
    name = E2E_MODEL.get(e2e["variant"])
    if name == "torch_channels_last" and e2e.get("device", "cpu").startswith("cuda"):
        name = "cuda_bf16_cl"  # what TorchRunner runs on a GPU
    measured = {v["variant"]: v for v in variants}
    if name not in measured and name == "torch_channels_last":
        name = "torch_fp32"  # same runtime and weights, NCHW; always measured (the reference)
    if name not in measured:
        return {"model_variant": None, "vs_model": {}, "cpu_vs_model": {}}
    batches = measured[name]["batches"].items()
    return {
        "model_variant": name,
        "vs_model": {b: e2e["ms_per_image"] / m["ms_per_image"] for b, m in batches},
        "cpu_vs_model": {
            b: e2e["cpu_ms_per_image"] / m["cpu_ms_per_image"]
            for b, m in batches
            if "cpu_ms_per_image" in m and "cpu_ms_per_image" in e2e
        },
    }


def e2e_lines(r: dict) -> str:
    """An end-to-end result with its `e2e_ratios` as printed: wall time, then CPU time."""
    over = r["model_variant"]
    of = f" of {over} model-only" if over else ""
    na = "n/a" if over else "n/a (no model-only run of that runtime)"
    ratios = ", ".join(f"{v:.2f}x batch {b}" for b, v in r["vs_model"].items()) or na
    cpu = ", ".join(f"{v:.2f}x batch {b}" for b, v in r["cpu_vs_model"].items()) or na
    return (
        f"{r['variant']:22s} {r['images']:5d} img {r['ms_per_image']:9.2f} ms/img "
        f"{r['images_per_s']:8.1f} img/s {r['rss_peak_mb']:8.0f} MB peak RSS  {ratios}{of}\n"
        f"{'':22s} CPU time {r['cpu_ms_per_image']:7.1f} ms/img: {cpu}{of}"
    )


def table(results: list[dict], fl: dict) -> str:
    head = f"{'variant':22s} {'batch':>5s} {'ms/img':>9s} {'img/s':>8s} {'floor%':>7s} "
    head += f"{'RSS MB':>8s} {'Dice':>7s} {'Dice min':>8s}"
    lines = [head, "-" * len(head)]
    for r in results:
        for b, m in r["batches"].items():
            share = 100 * variant_floor_ms(r["variant"], fl) / m["ms_per_image"]
            lines.append(
                f"{r['variant']:22s} {b:>5s} {m['ms_per_image']:9.2f} "
                f"{m['images_per_s']:8.1f} {share:6.0f}% {r['rss_peak_mb']:8.0f} "
                f"{r['dice_mean']:7.4f} {r['dice_min']:8.4f}"
            )
    return "\n".join(lines)
