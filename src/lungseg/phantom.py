"""Parametric synthetic PA chest radiograph with its own ground truth (numpy + OpenCV only).

Anatomy is a density map in "anatomical units" (thorax ~ [0, 1]^2, patient's right on image left),
mapped to pixels by a random similarity transform, then exposed (bright = dense). Masks follow
anatomy (``lungs`` excludes heart and mediastinum, like JSRT/SCR and Montgomery masks; ``heart`` is
the silhouette down to the diaphragm, as SCR draws it). Heart and lung proportions are calibrated
to the train/val masks: benchmarks/phantom_anatomy.py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .phantom_draw import Frame, blur, ring
from .png import write_png

DISEASES = ("none", "opacity", "white-out", "effusion", "devices")


@dataclass
class Phantom:
    """Synthetic film. ``image`` float32 HxW in [0, 1]; masks uint8 HxW in {0, 1}."""

    image: np.ndarray  # float32 HxW in [0, 1], bright = dense
    lungs: np.ndarray  # uint8 HxW {0, 1}: right | left
    right: np.ndarray  # uint8 HxW {0, 1}: patient's right lung (image left)
    left: np.ndarray  # uint8 HxW {0, 1}: patient's left lung (image right)
    heart: np.ndarray  # uint8 HxW {0, 1}


def _lung_ctrl(cx: float, side: int, w: float, top: float, cp: float, dome: float, rng):
    """Control points of one lung envelope; side -1 = patient's right (image left), +1 = left."""
    j = rng.normal(0, 0.006, (14, 2))
    f_v = [(0.04, top + 0.07), (0.2, top + 0.012), (0.37, top), (0.54, top + 0.025),
           (0.72, top + 0.09), (0.89, top + 0.24), (0.97, 0.5 * (top + cp) + 0.06),
           (1.0, cp - 0.07), (0.985, cp), (0.86, cp - 0.035), (0.66, dome + 0.012),
           (0.45, dome), (0.24, dome + 0.005), (0.04, dome)]  # fmt: skip
    return [(cx + side * f * w + dx, v + dy) for (f, v), (dx, dy) in zip(f_v, j, strict=True)]


def _anatomy(fr: Frame, rng: np.random.Generator) -> dict:
    """Masks (float32 HxW {0,1}) of lung envelopes, mediastinum, heart, body, abdomen + params."""
    cx, wr, top, cpr = (
        0.5 + rng.normal(0, 0.01),
        *rng.uniform((0.33, 0.07, 0.72), (0.38, 0.12, 0.79)),
    )
    wl = wr * rng.uniform(0.91, 0.99)
    cpl, dr = cpr + rng.uniform(-0.01, 0.02), cpr - rng.uniform(0.09, 0.13)
    dl = dr + rng.uniform(0.015, 0.045)
    env_r = fr.fill(_lung_ctrl(cx, -1, wr, top + rng.uniform(0, 0.02), cpr, dr, rng))
    env_l = fr.fill(_lung_ctrl(cx, 1, wl, top, cpl, dl, rng))
    m, ak, mb = rng.uniform(0.04, 0.055), rng.uniform(0.075, 0.095), max(dr, dl) + 0.06
    med = [(cx - m, -0.3), (cx - m, 0.15), (cx - m - 0.012, 0.3), (cx - m - 0.02, 0.42),
           (cx - 0.06, mb), (cx + 0.06, mb), (cx + 0.075, 0.42), (cx + 0.085, 0.36),
           (cx + ak, 0.29), (cx + ak - 0.02, 0.24), (cx + m, 0.19), (cx + m, -0.3)]  # fmt: skip
    hw, hr, hb = wl * rng.uniform(0.59, 0.71), rng.uniform(0.095, 0.125), max(dr, dl) + 0.09
    heart = [(cx - 0.01, 0.425), (cx - 0.065, 0.465), (cx - hr, 0.54), (cx - hr - 0.005, 0.61),
             (cx - hr + 0.01, dr + 0.06), (cx - hr + 0.025, hb), (cx + 0.1, hb + 0.01),
             (cx + hw - 0.03, hb), (cx + hw, dl - 0.02), (cx + hw - 0.03, 0.54),
             (cx + 0.14, 0.475), (cx + 0.07, 0.425)]  # fmt: skip
    med_m, heart_m = fr.fill(med), fr.fill(np.array(heart) + rng.normal(0, 0.004, (12, 2)))
    cut = np.maximum(med_m, heart_m)
    right, left = env_r * (1 - cut), env_l * (1 - cut)
    # body: torso half-width as a function of v and shoulder masses -> soft-tissue thickness
    bw = rng.uniform(0.94, 1.04)
    x = np.clip((fr.V - top + rng.uniform(0.14, 0.2)) / 0.25, 0, 1)  # neck -> rounded shoulders
    hwb = (0.16 + 0.36 * (1 - (1 - x) ** 2)) * bw
    hwb = np.minimum(hwb, np.interp(fr.V, [0.3, 0.8, 1.2], [0.5, 0.48, 0.44]) * bw)
    body = np.clip(1 - ((fr.U - cx) / hwb) ** 2, 0, 1) ** 0.45
    # diaphragm: lowest envelope row per column, sloping down laterally beyond the lungs
    env = np.maximum(env_r, env_l)
    rows = np.where(env.any(0), fr.h - 1 - np.argmax(env[::-1], 0), -1).astype(np.float64)
    xs, ok = np.arange(fr.w), rows >= 0
    x0, x1 = xs[ok][[0, -1]]  # the lungs are always in the field of view
    low = np.interp(xs, xs[ok], rows[ok]).astype(np.float32)[None]
    bridge = np.ones((1, 2 * round(0.05 * fr.k) + 1), np.uint8)  # the gap between the lungs,
    low = cv2.erode(cv2.dilate(low, bridge), bridge)[0]  # where the heart sits: no upward spike
    low += 1.5 * np.clip(np.maximum(x0 - xs, xs - x1), 0, None)
    abdomen = (np.arange(fr.h)[:, None] > low[None, :] + 0.01 * fr.k).astype(np.float32)
    lat = np.maximum(np.abs(fr.U - cx) - np.where(fr.U < cx, wr, wl), 0)
    abdomen *= np.exp(-((lat / (0.02 + np.clip(fr.V - cpl, 0, None))) ** 2))
    return dict(cx=cx, top=top, dr=dr, dl=dl, wr=wr, wl=wl, env_r=env_r, env_l=env_l, right=right,
                left=left, heart=heart_m, med=med_m, body=body, abdomen=abdomen)  # fmt: skip


def _bones(fr: Frame, a: dict, rng: np.random.Generator) -> np.ndarray:
    """Density (float32 HxW) of ribs, clavicles, spine and humeral heads."""
    cx, top = a["cx"], a["top"]
    post, ant = np.zeros((fr.h, fr.w), np.float32), np.zeros((fr.h, fr.w), np.float32)
    dv = rng.uniform(0.062, 0.072)
    for side, w in ((-1, a["wr"]), (1, a["wl"])):
        for k in range(11):
            v0 = top - 0.035 + k * dv + rng.normal(0, 0.004)
            ln, r, dr = (
                (w + 0.02) * min(1, 0.45 + 0.25 * k),
                *rng.uniform((0.03, 0.09), (0.045, 0.12)),
            )
            # posterior rib (spine -> lateral wall), lateral turn, anterior rib (fainter)
            f_v = [(0.03 / ln, 0), (0.25, -r), (0.6, -r / 2), (0.88, 0.4 * dr), (1, dr),
                   (0.97, 1.6 * dr), (0.75, 2.3 * dr), (0.4, 3 * dr)]  # fmt: skip
            pts = [(cx + side * f * ln, v0 + dvv) for f, dvv in f_v]
            th = 0.027 + 0.002 * min(k, 4)
            fr.line(post, pts[:6], th, 1.0)
            fr.line(ant, pts[4:], th * 1.1, 1.0)
    clav = np.zeros_like(post)
    for side in (-1, 1):
        t = rng.uniform(-0.03, 0.02)
        f_v = [(0.06, 0.11), (0.13, 0.09), (0.22, 0.06), (0.3, 0.015 + t / 2), (0.37, t - 0.01)]
        fr.line(clav, [(cx + side * f, top + v) for f, v in f_v], rng.uniform(0.026, 0.034), 1.0)
        fr.fill(ring(cx + side * 0.5, top + 0.06, 0.07, 0.08), 0.5, clav)  # humeral head
    spine = np.zeros_like(post)
    for v in np.arange(top - 0.4, 1.3, dv):
        fr.line(spine, [(cx - 0.02, v + 0.37 * dv), (cx + 0.02, v + 0.37 * dv)], 0.72 * dv, 0.6, 1)
        for s in (-1, 1):  # pedicles
            fr.fill(ring(cx + s * 0.024, v + dv * 0.3, 0.009, 0.012, 8), 0.9, spine)
    spine = np.clip(spine, 0, 1) * np.exp(-(((fr.U - cx) / 0.045) ** 4))
    sk = fr.k / 512
    out = 0.085 * blur(post, 2.5 * sk) + 0.04 * blur(ant, 3 * sk) + 0.15 * blur(clav, 1.5 * sk)
    hidden = blur(np.maximum(a["abdomen"], a["heart"]), 0.02 * fr.k)
    out *= np.clip(a["body"] * 3, 0, 1) * (1 - 0.6 * hidden)
    return out + 0.14 * blur(spine, 1.5 * sk) * (1 - 0.5 * hidden)


def _vessels(fr: Frame, a: dict, rng: np.random.Generator) -> np.ndarray:
    """Density (float32 HxW) of hila and a branching pulmonary vessel tree."""
    cv, cx = np.zeros((fr.h, fr.w), np.float32), a["cx"]
    for side, hv in ((-1, 0.42), (1, 0.4)):
        hu = cx + side * rng.uniform(0.08, 0.1)
        stack = [(hu, hv + rng.uniform(-0.05, 0.05), np.deg2rad(ang), 0.06, 0.008, 0)
                 for ang in np.linspace(-75, 85, 8) + rng.normal(0, 8, 8)]  # fmt: skip
        while stack:
            u, v, ang, ln, th, d = stack.pop()
            du, dv = side * np.cos(ang) * ln, np.sin(ang) * ln
            mid = (u + du / 2 + rng.normal(0, ln * 0.08), v + dv / 2 + rng.normal(0, ln * 0.08))
            fr.line(cv, [(u, v), mid, (u + du, v + dv)], th, (th / 0.008) ** 1.3, 1)
            for sgn in (-1, 1) if d < 4 else ():  # bifurcate: turn 12-35 deg, shorter, thinner
                f = rng.uniform((0.2, 0.65), (0.6, 0.85))
                stack.append((u + du, v + dv, ang + sgn * f[0], ln * f[1], th * 0.72, d + 1))
        cv += 0.6 * np.exp(-((fr.U - hu) ** 2 + (fr.V - hv - 0.01) ** 2) / (2 * 0.035**2))
    return cv


def _disease(fr: Frame, a: dict, air: np.ndarray, d: np.ndarray, kind: str, rng) -> None:
    """Apply a disease to ``air`` / ``d`` (density) in place; masks stay anatomical."""
    side = "right" if rng.random() < 0.5 else "left"
    lung = a[side]
    if kind == "white-out":
        air *= 1 - np.clip(2 * blur(lung, 0.008 * fr.k), 0, 1)
        d += 0.3 * blur(lung, 0.01 * fr.k)
    elif kind == "opacity":
        ys, xs = np.nonzero(lung)
        blob = np.zeros_like(d)
        for i in rng.choice(len(ys), 6):
            s = rng.uniform(0.03, 0.07) * fr.k
            blob += np.exp(-((fr.xs - xs[i]) ** 2 + (fr.ys - ys[i]) ** 2) / (2 * s * s))
        tex = blur(rng.random(d.shape).astype(np.float32), 0.01 * fr.k)
        tex = (tex - tex.min()) / (np.ptp(tex) + 1e-6)
        d += 0.6 * np.clip(blob, 0, 1) * (0.4 + tex) * blur(lung, 0.01 * fr.k)
    elif kind == "effusion":  # fluid replaces air at the base, meniscus rising laterally
        s = -1 if side == "right" else 1
        lat = np.clip(s * (fr.U - a["cx"]) / a["w" + side[0]], 0, 1.2)
        lvl = max(a["dr"], a["dl"]) + rng.uniform(-0.18, -0.06) + 0.1 * (1 - lat) ** 2
        fluid = blur(np.clip((fr.V - lvl) / 0.08, 0, 1) ** 0.7 * lung, 0.004 * fr.k)
        air *= 1 - 0.95 * fluid
        d += 0.08 * fluid
    elif kind == "devices":  # metal/plastic adds density: draw on its own canvas, then add
        cx, top, dev = a["cx"], a["top"], np.zeros_like(d)
        for _ in range(rng.integers(3, 6)):  # ECG electrodes + leads
            u, v = cx + rng.uniform(-0.4, 0.4), rng.uniform(0.1, 0.8)
            fr.fill(ring(u, v, 0.022, 0.022), 0.25, dev)
            fr.line(dev, ring(u, v, 0.02, 0.02, 24), 0.004, 0.9, 1)
            fr.fill(ring(u, v, 0.006, 0.006), 1.5, dev)
            end = (u + rng.uniform(-0.3, 0.3), rng.choice([-0.2, 1.2]))
            mid = ((u + end[0]) / 2 + rng.normal(0, 0.1), (v + end[1]) / 2)
            fr.line(dev, [(u, v), mid, end], 0.004, 1.0)
        tube = [(cx, -0.3), (cx - 0.005, 0.1), (cx, top + 0.17)]
        fr.line(dev, tube, 0.02, 0.15)  # endotracheal tube with radio-opaque stripe
        fr.line(dev, tube, 0.004, 1.2)
        cvc = [(cx - 0.3, top + 0.04), (cx - 0.12, top + 0.07), (cx - 0.05, 0.3), (cx - 0.04, 0.4)]
        fr.line(dev, cvc, 0.006, 1.0)  # central venous catheter
        dl = a["dl"] + 0.06  # nasogastric tube into the stomach
        ng = [(cx + 0.01, -0.3), (cx + 0.02, 0.4), (cx + 0.12, dl), (cx + 0.2, dl + 0.02)]
        fr.line(dev, ng, 0.008, 0.6)
        txt, sc, font = np.zeros(d.shape, np.uint8), fr.w / 512, cv2.FONT_HERSHEY_SIMPLEX
        w = max(1, round(2.5 * sc))  # burnt-in side marker and annotation
        cv2.putText(txt, "R", (round(20 * sc), round(45 * sc)), font, 1.2 * sc, 255, w)
        cv2.putText(
            txt, "PORTABLE", (fr.w - round(170 * sc), round(35 * sc)), font, 0.7 * sc, 255, w
        )
        d += blur(dev, 0.6 * fr.k / 512) + txt / 50.0


def make_phantom(
    size: int = 512, seed: int = 0, disease: str = "none", height: int | None = None
) -> Phantom:
    """Synthetic PA chest film ``size`` px wide (>= 64), ``height`` px high (default ``size``).
    Deterministic per ``seed``; anatomy, masks and exposure do not depend on ``disease``."""
    if disease not in DISEASES:
        raise ValueError(f"unknown disease {disease!r}; choose one of {', '.join(DISEASES)}")
    h = size if height is None else height
    if size < 64 or h < 64:
        raise ValueError(f"size and height must be >= 64 px, got size={size}, height={height}")
    rng = np.random.default_rng(seed)
    fr = Frame(h, size, rng)
    a = _anatomy(fr, rng)
    lungs = np.maximum(a["right"], a["left"])
    sk, body, inside = fr.k / 512, a["body"], np.clip(a["body"] * 4, 0, 1)
    dist = cv2.distanceTransform((lungs > 0).astype(np.uint8), cv2.DIST_L2, 5) / fr.k
    apex = np.clip((fr.V - a["top"]) / 0.22, 0, 1)
    air = (0.45 * blur(lungs, 0.8 * sk) + 0.55 * (1 - np.exp(-dist / 0.07))) * (0.7 + 0.3 * apex)
    heart = a["heart"] * (1 - a["abdomen"])  # the cardiac silhouette, down to the diaphragm
    air += 0.15 * blur(heart, 0.02 * fr.k)  # retrocardiac lung
    tex = blur(rng.standard_normal(lungs.shape).astype(np.float32), 1.2 * sk)
    lo = blur(tex, 8 * sk)
    tex = 0.01 * tex / (tex.std() + 1e-6) + 0.015 * lo / (lo.std() + 1e-6)
    trachea = np.exp(-(((fr.U - a["cx"] + 0.004) / 0.017) ** 6)) * (fr.V < a["top"] + 0.22)
    med = blur(a["med"], 0.006 * fr.k) * np.clip((fr.V - a["top"] + 0.06) / 0.14, 0, 1)
    ctr = np.maximum(0.36 * med, 0.26 * blur(a["heart"], 0.003 * fr.k))
    ctr = np.maximum(ctr, 0.42 * blur(a["abdomen"], 0.012 * fr.k))
    d = 0.72 * body + ctr * inside - 0.12 * blur(trachea.astype(np.float32), 2 * sk)
    vessel_bed = blur(np.maximum(lungs, a["heart"]), 0.01 * fr.k)
    d += _bones(fr, a, rng) + 0.1 * _vessels(fr, a, rng) * vessel_bed
    if rng.random() < 0.6:  # gastric bubble under the left dome
        bub = fr.fill(ring(a["cx"] + 0.17, a["dl"] + 0.08, 0.05, 0.025, 10))
        d -= 0.2 * blur(bub * a["abdomen"], 3 * sk)
    d += tex * blur(lungs, 3 * sk)
    if disease != "none":
        _disease(fr, a, air, d, disease, np.random.default_rng([seed, DISEASES.index(disease)]))
    d -= rng.uniform(0.5, 0.6) * air
    nrng = np.random.default_rng([seed, 99])
    img = 1 - np.exp(-nrng.uniform(1.8, 2.4) * np.clip(d, 0, None))
    bg = nrng.uniform(0, 0.12) if nrng.random() < 0.7 else nrng.uniform(0.2, 0.4)
    img = blur((bg + (1 - bg) * img).astype(np.float32), nrng.uniform(0.4, 1.0) * sk)
    img = img + nrng.uniform(0, 0.5) * (img - blur(img, 0.04 * fr.k))  # unsharp-mask processing
    img = np.clip(img, 0, 1) ** nrng.uniform(0.8, 1.25)
    img = img + nrng.normal(0, nrng.uniform(0.004, 0.012), img.shape)
    image = np.clip(img, 0, 1).astype(np.float32)
    u8 = [(m > 0.5).astype(np.uint8) for m in (lungs, a["right"], a["left"], heart)]
    return Phantom(image, *u8)


def write_phantoms(
    out: str | Path, n: int = 1, size: int = 512, seed: int = 0, disease: str = "none"
) -> list[Path]:
    """Write ``out/images/phantom_{seed+i:03d}.png`` (8-bit gray) and the lungs' mask of the same
    name in ``out/masks/`` (0/255): a data layout `lungseg evaluate --data out` and `train` read.
    Returns the films' paths."""
    if disease not in DISEASES or size < 64:
        make_phantom(size, seed, disease)  # raises the helpful ValueError before touching disk
    out = Path(out)
    for folder in ("images", "masks"):
        (out / folder).mkdir(parents=True, exist_ok=True)
    names = [f"phantom_{seed + i:03d}.png" for i in range(n)]
    for i, name in enumerate(names):
        p = make_phantom(size, seed + i, disease)
        write_png(out / "images" / name, np.round(p.image * 255).astype(np.uint8))
        write_png(out / "masks" / name, p.lungs * np.uint8(255))
    return [out / "images" / name for name in names]
