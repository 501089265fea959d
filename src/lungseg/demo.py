"""`lungseg demo`: the whole pipeline on a built-in phantom film whose lungs are known, so a fresh
install can be checked end to end without any data (`make demo`)."""

from __future__ import annotations

import json
from pathlib import Path

from .imageio import read_mask
from .metrics import confusion
from .model import DEFAULT_WEIGHTS
from .phantom import make_phantom
from .png import write_png
from .predict import predict_paths


def demo(out: str | Path, size: int = 1024, seed: int = 7, model: str | None = None) -> int:
    """`lungseg demo`: a phantom film -> `predict` (shipped model by default) -> mask, overlay
    and stats under OUT/output, and the Dice against the phantom's own lung mask, printed and
    written to OUT/demo.json. Returns predict's exit code."""
    out = Path(out)
    (out / "input").mkdir(parents=True, exist_ok=True)
    ph = make_phantom(size=size, seed=seed)
    write_png(out / "input" / "phantom.png", (ph.image * 255 + 0.5).astype("uint8"))
    write_png(out / "phantom_truth.png", ph.lungs * 255)
    failed = predict_paths([str(out / "input")], str(out / "output"), model=model)
    dice = confusion(read_mask(out / "output" / "phantom_mask.png") > 0, ph.lungs).dice
    record = {"dice": dice, "model": model or str(DEFAULT_WEIGHTS), "size": size, "seed": seed}
    (out / "demo.json").write_text(json.dumps(record, indent=2))  # what gates compare
    print(f"wrote {out / 'output'}: phantom_mask.png, phantom_overlay.png, results.csv")
    print(f"Dice against the phantom's own lung mask: {dice:.3f} (also in {out / 'demo.json'})")
    return 1 if failed else 0
