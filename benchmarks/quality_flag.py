"""Quality-flag benchmark: does `quality = check` single out the results that need a look?

The model segments the films of a split, clean and under each corruption of lungseg.augment at
three severities (as `robustness.py`), and the synthetic phantoms (clean and diseased; truth =
the lung field). Each result's IoU against the clean anatomical mask is set beside its flag: a
result is POOR below `--poor` IoU. Per condition and in all: how many results are flagged (the
reading work the flag asks for), how many poor results it flags (its sensitivity), and the mean
IoU of flagged and unflagged results; per flag reason, how often it fires and on what IoU. Prints
tables, writes JSON with one row per result.

    python benchmarks/quality_flag.py --data ../shared/data --split val
    python benchmarks/quality_flag.py --data ../shared/data --split test --conditions clean@0.0 \
        portable@1.0 opacity@1.0 --no-phantoms --out benchmarks/results/quality_flag_test.json
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

import numpy as np
from model_runs import conditions  # beside this file (sys.path[0] for a script)
from report_json import write_json

from lungseg import datasets
from lungseg.augment import corrupt
from lungseg.imageio import Radiograph
from lungseg.metrics import confusion
from lungseg.model import DEFAULT_WEIGHTS
from lungseg.pairs import load_pair
from lungseg.phantom import DISEASES, make_phantom
from lungseg.segmenter import Segmenter
from lungseg.splits import assign_splits, select


def cases(a) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """(condition, film id, image float32 HxW [0,1], truth mask uint8 {0,1}) for every result."""
    out = []
    if a.split:
        samples, _ = datasets.discover(a.data)
        chosen = select(samples, assign_splits(Path(a.data), samples), a.split, limit=a.limit)
        pairs = [load_pair(s) for s in chosen]
        for name, sev in a.conditions:
            rng = np.random.default_rng(a.seed)  # the same films as robustness.py
            for s, (img, mask) in zip(chosen, pairs, strict=True):
                film = img if name == "clean" else corrupt(img, mask, name, sev, rng)
                out.append((f"{name}@{sev}", f"{s.dataset}/{s.id}", film, mask))
    if a.phantoms:
        for disease in DISEASES:
            for seed in a.phantom_seeds:
                ph = make_phantom(768, seed, disease)
                out.append((f"phantom {disease}", f"seed {seed}", ph.image, ph.lungs))
    return out


def summary(rows: list[dict], poor: float) -> dict:
    flagged = [r for r in rows if r["quality"] != "ok"]
    bad = [r for r in rows if r["iou"] < poor]
    mean = lambda rs: float(np.mean([r["iou"] for r in rs])) if rs else None  # noqa: E731
    return {
        "n": len(rows),
        "flagged": len(flagged),
        "poor": len(bad),
        "poor_flagged": sum(r["quality"] != "ok" for r in bad),
        "iou_flagged": mean(flagged),
        "iou_unflagged": mean([r for r in rows if r["quality"] == "ok"]),
        "min_iou_unflagged": min((r["iou"] for r in rows if r["quality"] == "ok"), default=None),
    }


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--split", default="val", choices=["", "train", "val", "test"],
                   help="films of this split ('' for phantoms only)")  # fmt: skip
    p.add_argument("--model", default=str(DEFAULT_WEIGHTS))
    p.add_argument("--limit", type=int, help="at most N films")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conditions", nargs="+", help="only these, e.g. clean@0.0 opacity@1.0")
    p.add_argument("--no-phantoms", dest="phantoms", action="store_false")
    p.add_argument("--phantom-seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4, 5])
    p.add_argument("--poor", type=float, default=0.85, help="IoU below which a result is poor")
    p.add_argument("--out", default="benchmarks/results/quality_flag.json")
    a = p.parse_args(argv)
    a.conditions = conditions(p, a.conditions)  # (checked before any data is read)

    seg = Segmenter(a.model, device="cpu")
    rows = []
    for cond, film_id, image, truth in cases(a):
        res = seg(Radiograph(image))
        s = res.stats
        rows.append(
            {"condition": cond, "film": film_id, "iou": confusion(res.mask, truth).iou}
            | {k: s[k] for k in ("quality", "flags", "uncertain_fraction", "components")}
        )
    groups = {
        c: [r for r in rows if r["condition"] == c]
        for c in dict.fromkeys(r["condition"] for r in rows)
    }
    table = {c: summary(rs, a.poor) for c, rs in groups.items()} | {"all": summary(rows, a.poor)}
    print(f"{'condition':22s} {'n':>4s} {'flagged':>8s} {'poor':>5s} {'poor flagged':>13s} "
          f"{'IoU flagged':>12s} {'IoU ok':>7s} {'min IoU ok':>11s}")  # fmt: skip
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    for c, t in table.items():
        print(
            f"{c:22s} {t['n']:4d} {t['flagged']:8d} {t['poor']:5d} {t['poor_flagged']:13d} "
            f"{fmt(t['iou_flagged']):>12s} {fmt(t['iou_unflagged']):>7s} "
            f"{fmt(t['min_iou_unflagged']):>11s}"
        )
    reasons = Counter(f for r in rows for f in r["flags"].split(";") if f)
    by_reason = {}
    print("\nreason               fires  mean IoU  poor among them")
    for f, n in reasons.most_common():
        hit = [r for r in rows if f in r["flags"].split(";")]
        by_reason[f] = {"n": n, "mean_iou": float(np.mean([r["iou"] for r in hit]))}
        by_reason[f]["poor"] = sum(r["iou"] < a.poor for r in hit)
        print(f"{f:20s} {n:6d} {by_reason[f]['mean_iou']:9.3f} {by_reason[f]['poor']:8d}")
    missed = sorted(
        (r for r in rows if r["iou"] < a.poor and r["quality"] == "ok"), key=lambda r: r["iou"]
    )
    if missed:
        print(f"\npoor and not flagged ({len(missed)}):")
        for r in missed[:15]:
            print(f"  {r['iou']:.3f} {r['condition']:18s} {r['film']:26s} uncertain "
                  f"{r['uncertain_fraction']:.3f}")  # fmt: skip
    meta = {"split": a.split, "model": a.model, "poor_iou": a.poor, "seed": a.seed}
    write_json(a.out, meta, summary=table, reasons=by_reason, results=rows)


if __name__ == "__main__":
    main()
