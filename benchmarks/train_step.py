"""Training step time of the shipped network on this machine: fp32 against bf16 autocast.

What `lungseg train --precision bf16-mixed` buys on a CPU: for each input size and precision, the
seconds per film of a training step (forward, BCE + Dice loss, backward, Adam) on random data at
batch 8, after one warm-up step; bf16 as `train` runs it (autocast, channels_last). Data loading
and augmentation are not in it. Prints a table, writes JSON with the machine (CPU, SIMD flags).

    python benchmarks/train_step.py --sizes 256 512 --steps 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

import torch
from inference_measure import machine  # beside this file (sys.path[0] for a script)
from report_json import write_json

from lungseg.runconfig import TrainConfig
from lungseg.train import LungSegModule


def seconds_per_film(size: int, precision: str, batch: int, steps: int) -> float:
    """One step as `train` takes it: LungSegModule's network and loss (BCE + Dice), Adam."""
    torch.manual_seed(0)
    module = LungSegModule(asdict(TrainConfig(size=size, batch_size=batch, precision=precision)))
    model = module.model.train()
    x = torch.randn(batch, 1, size, size)
    y = (torch.rand(batch, 1, size, size) > 0.5).float()
    bf16 = precision == "bf16-mixed"
    if bf16:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters(), 1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = module.loss(logits.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()  # warm-up: oneDNN picks its kernels
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / (steps * batch)


def batch_size(text: str) -> int:
    """--batch: 2 or more (BatchNorm needs more than one film in training mode; TrainConfig)."""
    value = int(text)
    if value < 2:
        raise argparse.ArgumentTypeError(f"{value}: use 2 or more (BatchNorm)")
    return value


def step_count(text: str) -> int:
    """--steps: 1 or more (the time per film divides by the timed steps)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: steps must be at least 1")
    return value


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    p.add_argument("--precisions", nargs="+", default=["32-true", "bf16-mixed"])
    p.add_argument("--batch", type=batch_size, default=8, help="films per step, 2 or more")
    p.add_argument(
        "--steps", type=step_count, default=2, help="timed steps after the warm-up, 1 or more"
    )
    p.add_argument("--out", default="benchmarks/results/train_step.json")
    a = p.parse_args(argv)

    rows, host = [], machine()
    print(f"{host.get('cpu')}, {torch.get_num_threads()} threads, SIMD: {host.get('simd')}")
    print(f"{'size':>5} {'precision':>11} {'s/film':>8} {'vs fp32':>8}")
    for size in a.sizes:
        base = None
        for prec in a.precisions:
            t = seconds_per_film(size, prec, a.batch, a.steps)
            base = base or (t if prec == "32-true" else None)
            gain = f"{base / t:.2f}x" if base else "-"
            print(f"{size:>5} {prec:>11} {t:>8.3f} {gain:>8}")
            rows.append({"size": size, "precision": prec, "s_per_film": round(t, 4)})
    meta = {"command": "benchmarks/train_step.py", "batch": a.batch, "steps": a.steps}
    meta |= {"threads": torch.get_num_threads(), "machine": host}
    write_json(a.out, meta, rows=rows)


if __name__ == "__main__":
    main()
