"""Inference: `Segmenter` reads as the pipeline

    image -> preprocess -> model (PyTorch or ONNX Runtime) -> back to original grid
          -> post-process -> right/left labels -> a lost lung rebuilt -> measurements

It never imports training code; the mask always comes back at the input's own size.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from . import postprocess as pp
from .arrays import checked, from_array
from .imageio import Radiograph, from_pil, read_image
from .model import DEFAULT_WEIGHTS, ModelConfig
from .preprocess import preprocess, resize_labels, to_original, upright
from .rebuild import rebuild
from .runners import make_runner
from .sides import split_sides
from .stats import UNCERTAIN_MAX, film_flags, lung_balance, lung_sizes, measure, uncertain_fraction

WORK_SIZE = 1024  # films with a longer side are post-processed on a grid of this size
MIN_WORK_SIZE = 256  # (post-processing on a coarser grid than this loses the lungs' outline)


@dataclass(eq=False)  # (numpy arrays: `==` of two results would raise)
class Result:
    """`mask` uint8 HxW {0,1} and `labels` uint8 HxW (1 right, 2 left) at the input's size;
    `prob` float32 HxW in [0,1]; `stats` areas, ratios and the quality flag; `rebuilt` the
    side (1 or 2) whose lung the model lost and `rebuild` estimated, else None."""

    mask: np.ndarray
    labels: np.ndarray
    prob: np.ndarray
    stats: dict = field(default_factory=dict)
    rebuilt: int | None = None


def _signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


class Segmenter:
    """Segment the lungs in chest radiographs.

    >>> seg = Segmenter.default()
    >>> result = seg("film.dcm")   # or a PIL image or an HxW[xC] array (arrays.from_array)
    >>> result.mask.shape == result.prob.shape
    """

    def __init__(
        self,
        model: str | Path | None = None,
        device: str = "auto",
        postprocess: bool = True,
        work_size: int | None = WORK_SIZE,
        compile: bool = False,
        precision: str = "auto",
        rebuild: bool = True,
    ):
        if work_size is not None and work_size < MIN_WORK_SIZE:
            raise ValueError(f"work_size must be None or at least {MIN_WORK_SIZE}, got {work_size}")
        model = os.fsdecode(model) if isinstance(model, bytes) else model
        self._runner_args = (device, compile, precision)
        self.runner = make_runner(model, *self._runner_args)
        self.model_path = Path(model if model is not None else DEFAULT_WEIGHTS).resolve()
        self._loaded = _signature(self.model_path)
        self.config: ModelConfig = self.runner.config
        self.postprocess = postprocess
        self.rebuild = postprocess and rebuild  # a lost lung rebuilt (part of post-processing)
        self.work_size = work_size  # post-processing grid for larger films (None: their own)

    def model_file(self) -> Path | None:
        """The model file this Segmenter loaded, for records such as predict's run.json; None
        when it is gone or has changed since (size or modification time), so that its hash
        would not describe the weights in use."""
        same = self._loaded is not None and _signature(self.model_path) == self._loaded
        return self.model_path if same else None

    @classmethod
    def default(cls, **kwargs) -> Segmenter:
        """The model shipped with the package (another model: `Segmenter(model)`)."""
        if "model" in kwargs:
            raise TypeError("Segmenter.default() is the shipped model; for yours: Segmenter(model)")
        return cls(DEFAULT_WEIGHTS, **kwargs)

    def __getstate__(self) -> dict:  # pickled without its network (multiprocessing, spawn):
        return {**self.__dict__, "runner": None}  # loaded again from the model file

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if _signature(self.model_path) != self._loaded:  # (other weights under this config)
            raise ValueError(f"{self.model_path} changed or is gone since this Segmenter loaded it")
        self.runner = make_runner(self.model_path, *self._runner_args)

    def __call__(self, image: str | Path | bytes | np.ndarray | Radiograph) -> Result:
        return self.batch([image])[0]

    def batch(self, images: list) -> list[Result]:
        """Segment several images in one model call (paths, arrays, PIL images or Radiographs)."""
        if isinstance(images, (str, Path, bytes, np.ndarray, Radiograph, Image.Image)):
            raise TypeError(
                "batch() takes a list of images (of a stack: list(stack)); for one: seg(image)"
            )
        if not images:
            return []
        rads = [self._radiograph(im) for im in images]
        inputs, geometries = zip(*(self.prepare(r) for r in rads), strict=True)
        probs = self.runner(np.stack(inputs)[:, None])
        return [self.finish(p, g, r) for p, g, r in zip(probs, geometries, rads, strict=True)]

    def prepare(self, film: np.ndarray | Radiograph):
        """An image array (float32 HxW [0,1], uint8, ...: `arrays.from_array`) or a Radiograph
        -> (model input SxS, Geometry). A Radiograph whose header says it is displayed mirrored
        or upside down is turned upright for the model, which has only seen films with the heart
        on the image right and the head at the top; `finish` turns the result back."""
        c = self.config
        rad = film if isinstance(film, Radiograph) else None
        image = upright(rad.image, rad) if rad else from_array(film)
        return preprocess(image, c.size, c.fit, c.hist)

    def finish(self, prob_small: np.ndarray, geometry, rad: Radiograph | None = None) -> Result:
        """Model-grid probability -> Result on the original grid of `rad` (the input film:
        its pixels, spacing and orientation guide post-processing and measurements). A film
        whose long side exceeds `work_size` is post-processed on a grid of that size and its
        lungs mapped back with a smooth outline: the model's own grid is far coarser, and
        morphology on a 3000 px film costs several times the model. A lung lost beside the
        other, where the model is unsure (`stats.UNCERTAIN_MAX`), is rebuilt (`rebuild.rebuild`)
        unless the header says the film is not a frontal chest radiograph."""
        prob = upright(to_original(prob_small, geometry), rad)  # back to the film's display
        image = rad.image if rad else None
        rebuilding = self.rebuild and not film_flags(rad)
        h, w = prob.shape
        scale = (self.work_size or 0) / max(h, w)
        if self.postprocess and 0 < scale < 1:
            # the model's grid straight to the working grid; the film only for its black level
            size = (max(1, round(w * scale)), max(1, round(h * scale)))
            work = upright(to_original(prob_small, geometry, size), rad)
            small = None if image is None else cv2.resize(image, size)  # (bilinear: 4x faster)
            _, labels, n_raw, rebuilt = self._clean(work, small, rad, rebuilding)
            labels = resize_labels(labels, (h, w))
            mask = (labels > 0).astype(np.uint8)
        else:
            mask, labels, n_raw, rebuilt = self._clean(prob, image, rad, rebuilding)
        spacing = rad.spacing if rad else None
        stats = measure(labels, prob, spacing, n_raw, rad, rebuilt)
        return Result(mask, labels, prob, stats, rebuilt)

    def _clean(self, prob: np.ndarray, image: np.ndarray | None, rad, rebuilding: bool):
        """Probability (and film) on one grid, as displayed -> (mask, labels, raw component
        count, the side rebuilt or None) there. `rad`: the film (its orientation) or None."""
        raw = (prob >= self.config.threshold).astype(np.uint8)
        comps = pp.components(raw)  # labelled once: the QC count and the post-processing
        n_raw = int((comps.areas >= 0.01 * max(1, comps.areas.sum())).sum())  # specks: no fragments
        if self.postprocess:
            raw, comps = pp.clean_labelled(raw, image, prob, comps)
        labels = split_sides(raw, bool(rad and rad.flipped), comps)
        lost = lung_balance(lung_sizes(labels))[0] if rebuilding else None
        if lost is None or uncertain_fraction(prob) <= UNCERTAIN_MAX:
            return raw, labels, n_raw, None  # (a small lung the model is sure of: left alone)
        film = None if image is None else upright(image, rad)
        turned, rebuilt = rebuild(upright(labels, rad), film, lost=lost)  # templates: upright
        if rebuilt is None:
            return raw, labels, n_raw, None
        labels = upright(turned, rad)
        return (labels > 0).view(np.uint8), labels, n_raw, rebuilt

    @staticmethod
    def _radiograph(image) -> Radiograph:
        if isinstance(image, Radiograph):
            return checked(image)  # (made by hand: scaled and its spacing checked as files')
        if isinstance(image, (str, Path, bytes)):  # (bytes: a name that is not UTF-8)
            return read_image(image)
        if isinstance(image, Image.Image):  # any mode (palette, CMYK, ...) as its file would be
            return Radiograph(from_pil(image))
        return Radiograph(from_array(image))  # HxW or HxWxC; uint8, uint16, float [0,1]
