"""Training-time augmentation: chest-specific corruptions (disease, devices, portable film) and
geometry, and the dataset of training pairs that applies them. Corruptions change the image
only: the lung mask stays the anatomy, so a lung that is opaque on the film must still be
segmented.

All functions take `image` float32 HxW in [0,1] (before histogram normalisation), `mask` uint8
{0,1} (lungs), a numpy Generator and a `severity` in (0, 1] (1 = complete white-out etc.).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import finish, place, resize_pair

CORRUPTIONS = ("opacity", "effusion", "devices", "portable")


def _smooth_field(shape, rng, scale: float) -> np.ndarray:
    """Random smooth field in [0,1] with blobs of about `scale` x image size."""
    h, w = shape
    small = rng.random((max(2, int(1 / scale)), max(2, int(1 / scale)))).astype(np.float32)
    field = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)
    field = cv2.GaussianBlur(field, (0, 0), sigmaX=max(1.0, scale * w / 4))
    lo, hi = field.min(), field.max()
    return (field - lo) / (hi - lo + 1e-6)


def _sides(mask: np.ndarray, rng) -> np.ndarray:
    """The lung mask restricted to one side (random) or both."""
    choice = rng.integers(3)
    out = mask.astype(np.float32).copy()
    mid = mask.shape[1] // 2
    if choice == 0:
        out[:, mid:] = 0
    elif choice == 1:
        out[:, :mid] = 0
    return out


def _soft(region: np.ndarray, size: int) -> np.ndarray:
    k = max(3, size // 40) | 1
    return cv2.GaussianBlur(region.astype(np.float32), (k, k), 0)


def _raise_to(image, weight, level):
    """Blend the image towards the dense (bright) `level` with per-pixel weight in [0,1]."""
    return image + weight * (np.maximum(level, image) - image)


def opacity(image, mask, rng, severity: float):
    """Consolidation from patchy (low severity) to complete white-out (1.0), one or both sides."""
    region = _soft(_sides(mask, rng), image.shape[0])
    field = _smooth_field(image.shape, rng, scale=rng.uniform(0.1, 0.3))
    cover = np.clip((field - 0.9 * (1 - severity)) / 0.25, 0, 1)  # patchy -> whole lung
    level = np.quantile(image, 0.85) * rng.uniform(0.85, 1.05)  # soft-tissue density
    weight = region * cover * (0.35 + 0.55 * severity)
    texture = (_smooth_field(image.shape, rng, 0.04) - 0.5) * 0.06
    return np.clip(_raise_to(image, weight, level) + texture * weight, 0, 1)


def effusion(image, mask, rng, severity: float):
    """Basal haze with a meniscus, like a pleural effusion, rising with severity."""
    h, w = image.shape
    region = _sides(mask, rng)
    rows = np.nonzero(region.any(axis=1))[0]
    if len(rows) == 0:
        return image
    top, bottom = rows[0], rows[-1]
    level_row = bottom - severity * rng.uniform(0.3, 0.8) * (bottom - top)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    meniscus = level_row - 0.08 * h * np.abs(xx - w / 2) / w  # higher laterally
    weight = 1 / (1 + np.exp(-(yy - meniscus) / (0.02 * h)))
    region = _soft(cv2.dilate(region, np.ones((9, 9), np.uint8)), h)
    level = np.quantile(image, 0.92)
    return np.clip(_raise_to(image, region * weight * rng.uniform(0.6, 1.0), level), 0, 1)


def devices(image, mask, rng, severity: float):
    """Burnt-in lines, tubes, ECG electrodes and text markers (bright, radio-opaque)."""
    h, w = image.shape
    out = image.copy()
    bright = float(min(1.0, np.quantile(image, 0.99) + 0.1))
    for _ in range(1 + int(severity * 4)):  # lines and tubes: smooth curves from the edge
        pts = np.cumsum(rng.normal(0, 0.08, (6, 2)), axis=0) + rng.uniform(0.1, 0.9, 2)
        pts = (np.clip(pts, 0, 1) * [w, h]).astype(np.int32)
        width = int(rng.integers(1, max(2, w // 80)))
        cv2.polylines(out, [pts], False, bright * rng.uniform(0.7, 1.0), width, cv2.LINE_AA)
        if rng.random() < 0.5:  # tube: hollow centre
            cv2.polylines(out, [pts], False, float(image.mean()), max(1, width // 3), cv2.LINE_AA)
    for _ in range(int(severity * 6)):  # ECG electrodes
        c = (int(rng.uniform(0.05, 0.95) * w), int(rng.uniform(0.05, 0.95) * h))
        r = max(3, int(rng.uniform(0.012, 0.025) * w))
        cv2.circle(out, c, r, bright, -1, cv2.LINE_AA)
        cv2.circle(out, c, max(1, r // 2), bright * 0.6, -1, cv2.LINE_AA)
    layer = np.zeros((h, w), np.uint8)  # OpenCV draws text on 8-bit images only
    for text in rng.choice(["L", "R", "AP", "PORTABLE", "SUPINE"], size=1 + int(severity * 2)):
        org = (int(rng.uniform(0.02, 0.7) * w), int(rng.uniform(0.05, 0.98) * h))
        cv2.putText(
            layer,
            str(text),
            org,
            cv2.FONT_HERSHEY_SIMPLEX,
            w / 400 * rng.uniform(0.6, 1.5),
            255,
            max(1, w // 200),
            cv2.LINE_AA,
        )
    return np.maximum(out, layer.astype(np.float32) / 255 * bright)


def portable(image, mask, rng, severity: float):
    """Portable AP film look: low contrast, scatter haze, gamma, blur and noise."""
    h, w = image.shape
    out = image ** rng.uniform(1 - 0.4 * severity, 1 + 0.6 * severity)
    haze = _smooth_field(image.shape, rng, 0.5) * severity * rng.uniform(0.1, 0.4)
    contrast = 1 - severity * rng.uniform(0.2, 0.6)
    out = out * contrast + (1 - contrast) * out.mean() + haze
    # the imaging chain re-windows a hazy film, it does not burn it out: clipping here left most
    # of the lung of some bright films at white (no lung to see, nothing to learn or to score)
    lo, hi = np.percentile(out, [0.5, 99.5])
    if lo < 0 or hi > 1:
        out = (out - min(lo, 0.0)) / (max(hi, 1.0) - min(lo, 0.0))
    sigma = severity * rng.uniform(0, 0.004) * w
    if sigma > 0.3:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    out = out + rng.normal(0, 0.03 * severity, out.shape)
    return np.clip(out, 0, 1).astype(np.float32)


FUNCTIONS = {"opacity": opacity, "effusion": effusion, "devices": devices, "portable": portable}


def check_corruptions(names, what: str = "corruptions") -> None:
    """ValueError listing the valid names when any of `names` is not a corruption."""
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        raise ValueError(
            f"{what}: unknown {', '.join(map(repr, unknown))}; choose from "
            f"{', '.join(CORRUPTIONS)} (comma-separated)"
        )


def corrupt(image, mask, name: str, severity: float, rng) -> np.ndarray:
    """Apply one named corruption at `severity` in (0,1]."""
    if name not in FUNCTIONS:
        raise ValueError(f"unknown corruption {name!r}; choose from {CORRUPTIONS}")
    return FUNCTIONS[name](image.astype(np.float32), mask, rng, severity).astype(np.float32)


@dataclass
class Augmenter:
    """Random training augmentation for one (image, mask) pair on the resized grid."""

    corruptions: tuple[str, ...] = CORRUPTIONS
    p_corrupt: float = 0.5
    geometry: bool = True

    def __post_init__(self):
        check_corruptions(self.corruptions)
        import albumentations as A

        self.geom = (
            A.Compose(
                [
                    A.Affine(
                        scale=(0.85, 1.15),
                        translate_percent=(-0.06, 0.06),
                        rotate=(-10, 10),
                        shear=(-4, 4),
                        border_mode=cv2.BORDER_CONSTANT,
                        p=0.8,
                    ),
                    A.RandomBrightnessContrast(0.15, 0.15, p=0.5),
                ]
            )
            if self.geometry
            else None
        )

    def corrupt(self, image, mask, rng) -> np.ndarray:
        """Before histogram normalisation: each corruption with probability p_corrupt/2."""
        for name in self.corruptions:
            if rng.random() < self.p_corrupt / 2:
                image = corrupt(image, mask, name, float(rng.uniform(0.2, 1.0)), rng)
        return image

    def geometric(self, image, mask):
        """After histogram normalisation and canvas placement: same geometry on image and mask."""
        if self.geom is None:
            return image, mask
        out = self.geom(image=image, mask=mask)
        return out["image"], out["mask"]


class PairDataset:
    """Map-style dataset of (sample, image, mask) pairs resized once (aspect kept); per item:
    corruptions -> histogram normalisation -> canvas -> geometry (`aug` None: no augmentation).
    Items: (image 1xSxS float32 [0,1], mask 1xSxS float32 {0,1}) tensors."""

    def __init__(self, pairs, size: int, fit: str, hist: str, aug: Augmenter | None = None):
        self.items = [resize_pair(image, mask, size, fit) for _, image, mask in pairs]
        self.hist, self.aug = hist, aug

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        import torch  # imported here: the CLI reads CORRUPTIONS from this module

        image, mask, g = self.items[i]
        if self.aug:
            rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,))))
            image = self.aug.corrupt(image, mask, rng)
        x, m = finish(image, g, self.hist), place(mask, g)
        if self.aug:
            x, m = self.aug.geometric(x, m)
        return torch.from_numpy(x[None].copy()), torch.from_numpy(m[None].astype(np.float32))
