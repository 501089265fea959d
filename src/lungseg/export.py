"""`lungseg export`: a model file -> ONNX (fp32, or static int8 for CPUs), checked against PyTorch.

The .onnx file describes itself (metadata_props): "lungseg_config" (the ModelConfig json that
`read_config` / `OnnxRunner` read), "lungseg_version", "_precision", "_source" and "_check".

int8 uses ONNX Runtime static quantization: QDQ format, per-channel signed int8 weights with
`reduce_range` (7-bit weights: avoids the int16 saturation of the u8*s8 kernels on AVX2 CPUs
without VNNI), uint8 activations calibrated (MinMax) on real images preprocessed exactly as at
inference.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .files import file_sha256, is_byproduct, is_supported
from .imageio import ImageReadError, read_image
from .metrics import confusion
from .model import DEFAULT_WEIGHTS, ModelConfig, films_json, load_model, trained_on
from .preprocess import preprocess
from .protocol import is_shipped

log = logging.getLogger(__name__)

OPSET = 18
# The check against PyTorch fails the export (the file is removed) past these: an fp32 export
# off by more than rounding is broken, and so is an int8 one whose masks mostly disagree; one
# whose worst film's masks agree less than WARN_DICE_MIN is kept with a warning
MAX_LOGIT_DIFF, MIN_DICE_MEAN, WARN_DICE_MIN = 1e-2, 0.9, 0.9
INPUT, OUTPUT = "image", "logits"
CHECK_LIMIT = 16
FEW_CALIB = 8  # int8 calibration images below which export warns


def find_images(folder: str | Path, limit: int | None = None) -> list[Path]:
    """Films under `folder` (recursive; masks and other by-products left out, as by `predict`),
    sorted; at most `limit`, spread evenly over the sorted list so several datasets in one folder
    are all represented."""
    folder = Path(folder)
    if not folder.is_dir():
        what = "a file, not a folder" if folder.exists() else "no such folder"
        raise FileNotFoundError(f"{folder}: {what}; pass a folder of radiographs")
    files = sorted(
        p
        for p in folder.rglob("*")
        if p.is_file() and is_supported(p) and not is_byproduct(p, folder)
    )
    if not files:
        raise ValueError(f"{folder}: no images found (PNG, JPEG, TIFF, BMP, GIF or DICOM)")
    if limit and len(files) > limit:
        files = [files[i] for i in np.linspace(0, len(files) - 1, limit).round().astype(int)]
    return files


def model_inputs(paths: Sequence[str | Path], config: ModelConfig) -> np.ndarray:
    """Read and preprocess images exactly as inference does -> float32 Nx1xSxS. Unreadable files
    are skipped with a warning; ValueError if none is readable."""
    inputs = []
    for p in paths:
        try:
            image = read_image(p).image
        except (ImageReadError, ValueError, OSError) as e:
            log.warning("%s: skipped (%s)", p, e)
            continue
        inputs.append(preprocess(image, config.size, config.fit, config.hist)[0])
    if not inputs:
        where = f" in {Path(paths[0]).parent}" if len(paths) else ""
        raise ValueError(f"none of the {len(paths)} images{where} could be read")
    return np.stack(inputs)[:, None].astype(np.float32)


def _as_inputs(
    images: str | Path | Sequence | np.ndarray, config: ModelConfig, limit: int | None = None
) -> np.ndarray:
    """A folder, a list of image files, or model inputs (NxSxS / Nx1xSxS) -> Nx1xSxS float32."""
    if isinstance(images, np.ndarray):
        x = images if images.ndim == 4 else images[:, None]
        return x.astype(np.float32)
    if isinstance(images, (str, Path)):
        images = find_images(images, limit)
    return model_inputs(list(images), config)


@contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Raise chatty third-party loggers to WARNING for a while (unless lungseg logs DEBUG)."""
    loggers = [] if log.isEnabledFor(logging.DEBUG) else [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _export_fp32(net: torch.nn.Module, size: int, out: Path) -> None:
    """torch.onnx.export with a dynamic batch axis: the torch.export-based exporter, or the
    TorchScript one if that fails."""
    x, names = torch.rand(2, 1, size, size), {"input_names": [INPUT], "output_names": [OUTPUT]}
    batch = {"dynamic_shapes": ({0: torch.export.Dim("batch")},), "external_data": False}
    try:
        with _quiet("onnxscript", "onnx_ir", "torch.onnx"):
            kw = {"dynamo": True, "opset_version": OPSET, "verbose": False, **batch, **names}
            torch.onnx.export(net, (x,), str(out), **kw)
    except Exception as e:  # noqa: BLE001 - any exporter failure: try the other exporter
        log.warning("torch.export-based ONNX export failed (%s); using the TorchScript exporter", e)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            axes = {INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}
            kw = {"dynamo": False, "opset_version": 17, "dynamic_axes": axes, **names}
            torch.onnx.export(net, (x,), str(out), **kw)


def quantize_int8(fp32: str | Path, out: str | Path, calib_inputs: np.ndarray) -> None:
    """Static int8 quantization of an fp32 .onnx (see the module docstring for the choices)."""
    from onnxruntime import quantization as q
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(q.CalibrationDataReader):
        """Preprocessed calibration inputs, one image per batch."""

        def __init__(self) -> None:
            self.inputs = iter({INPUT: x[None]} for x in calib_inputs)

        def get_next(self) -> dict | None:
            return next(self.inputs, None)

    with tempfile.TemporaryDirectory(prefix="lungseg-quant-") as tmp:
        pre = Path(tmp) / "pre.onnx"
        # ORT's symbolic shape inference gives up on these graphs; ONNX's own inference suffices
        quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
        q.quantize_static(
            str(pre), str(out), Reader(), quant_format=q.QuantFormat.QDQ, per_channel=True,
            reduce_range=True, activation_type=q.QuantType.QUInt8,
            weight_type=q.QuantType.QInt8, calibrate_method=q.CalibrationMethod.MinMax)  # fmt: skip


def _set_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    proto = onnx.load(str(path))
    old = {p.key: p.value for p in proto.metadata_props}
    onnx.helper.set_model_props(proto, {**old, **props})
    onnx.save(proto, str(path))


def compare(
    model_path: str | Path | None,
    onnx_path: str | Path,
    images: str | Path | Sequence | np.ndarray,
    limit: int | None = CHECK_LIMIT,
    batch_size: int = 4,
) -> dict:
    """ONNX Runtime vs PyTorch fp32 on the same inputs (a folder, image files or model inputs).

    Returns n, max/mean |Δlogit|, max |Δprobability| and the Dice agreement (mean, min) of the
    masks thresholded at the model's threshold (Dice 1 when both masks are empty)."""
    import onnxruntime as ort

    net, config = load_model(model_path)
    x = _as_inputs(images, config, limit)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    ref, got = [], []
    with torch.inference_mode():
        for i in range(0, len(x), batch_size):
            ref.append(net(torch.from_numpy(x[i : i + batch_size])).numpy())
            got.append(session.run(None, {INPUT: x[i : i + batch_size]})[0])
    a, b = np.concatenate(ref)[:, 0], np.concatenate(got)[:, 0]
    pa, pb = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
    t = config.threshold
    dice = [confusion(u >= t, v >= t).dice for u, v in zip(pa, pb, strict=True)]
    d = np.abs(a - b)
    return {
        "n": len(x),
        "max_abs_logit_diff": float(d.max()),
        "mean_abs_logit_diff": float(d.mean()),
        "max_abs_prob_diff": float(np.abs(pa - pb).max()),
        "dice_mean": float(np.mean(dice)),
        "dice_min": float(np.min(dice)),
    }


def _output_path(out: str | Path, model: Path, int8: bool) -> Path:
    out = Path(out)
    if out.is_dir() or not out.suffix:
        out = out / f"{model.stem}{'_int8' if int8 else ''}.onnx"
    if out.suffix.lower() != ".onnx":
        raise ValueError(f"--out {out}: the file name must end in .onnx (or give a folder)")
    out.parent.mkdir(parents=True, exist_ok=True)
    return out


def _export_checked(net, config: ModelConfig, src: Path, out: Path, int8: bool, calib_files,
                    check_files) -> None:  # fmt: skip
    """`export_onnx`'s work: the .onnx written to `out`, checked against PyTorch (ValueError
    past the limits), its metadata set."""
    with tempfile.TemporaryDirectory(prefix="lungseg-export-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx" if int8 else out
        log.info("exporting %s (%s, %dx%d) to ONNX", src, config.encoder, config.size, config.size)
        _export_fp32(net, config.size, fp32)
        del net  # (its memory, before the checks run the model again)
        if int8:
            calib_x = model_inputs(calib_files, config)
            log.info("quantizing to int8 (static, QDQ), calibrated on %d images", len(calib_x))
            if len(calib_x) < FEW_CALIB:
                log.warning(
                    "int8 calibrated on only %d film(s): ranges from so few may clip other "
                    "films'; give --calib a folder of 32 or more like those it will see",
                    len(calib_x),
                )  # fmt: skip
            quantize_int8(fp32, out, calib_x)
    images = check_files or calib_files
    if images is None:
        log.info("no --check or --calib folder: checking on random inputs")
        images = np.random.default_rng(0).random((4, 1, config.size, config.size), np.float32)
    elif check_files is None and int8:
        log.info("checking on the calibration images; --check DIR checks on held-out images")
    result = compare(src, out, images)
    log.info(
        "ONNX vs PyTorch on %(n)d images: max |Δlogit| %(max_abs_logit_diff).4g, mask Dice "
        "mean %(dice_mean).4f (min %(dice_min).4f)",
        result,
    )
    off = result["max_abs_logit_diff"] > MAX_LOGIT_DIFF and not int8
    if off or result["dice_mean"] < MIN_DICE_MEAN:
        raise ValueError(
            f"the exported model does not reproduce PyTorch on {result['n']} images (max "
            f"|logit difference| {result['max_abs_logit_diff']:.3g}, mask Dice mean "
            f"{result['dice_mean']:.3f}), so it was not written; "
            + ("calibrate on more films like those it will see (--calib)" if int8 else
               "please report it with your torch and onnxruntime versions")
        )  # fmt: skip
    if result["dice_min"] < WARN_DICE_MIN:
        log.warning("ONNX masks differ noticeably from PyTorch (Dice min %.3f)", result["dice_min"])
    meta = {
        "config": json.dumps(asdict(config)),
        "version": __version__,
        "source": src.name,
        "source_sha256": file_sha256(src),  # (which weights it was made from)
        "precision": "int8" if int8 else "fp32",
        "check": json.dumps(result),
    }
    if films := trained_on(src):  # (evaluate warns of test films among them)
        meta["trained_on"] = films_json(films)
    meta |= {"shipped": "1"} if is_shipped(src) else {}  # (it records no films: evaluate knows)
    _set_metadata(out, {f"lungseg_{k}": v for k, v in meta.items()})


def export_onnx(
    model: str | Path | None,
    out: str | Path,
    int8: bool = False,
    calib: str | Path | None = None,
    check: str | Path | None = None,
    calib_limit: int = 32,
) -> Path:
    """Export `model` (a .safetensors/.ckpt; None = the shipped model) to ONNX at `out` (a .onnx
    file or a folder); `int8` quantizes statically, calibrated on up to `calib_limit` images from
    the `calib` folder. The result is compared with PyTorch on images from `check` (else `calib`,
    else random inputs); the numbers are logged and stored as metadata "lungseg_check", and
    past MAX_LOGIT_DIFF (fp32) or under MIN_DICE_MEAN nothing is written (ValueError; nor on
    any other error: an earlier file at `out` stays as it was).
    Returns the written path."""
    for extra in ("onnx", "onnxruntime", "onnxscript"):  # the `onnx` extra, before any work
        importlib.import_module(extra)

    src = Path(model) if model else DEFAULT_WEIGHTS
    if src.suffix.lower() == ".onnx":
        raise ValueError(f"{src} is already ONNX; export from the .safetensors or .ckpt file")
    if int8 and calib is None:
        raise ValueError(
            "int8 quantization needs calibration images: pass --calib DIR (a folder "
            "of radiographs like those the model will see, e.g. 32 or more)"
        )
    calib_files = find_images(calib, calib_limit) if calib is not None else None
    check_files = find_images(check, CHECK_LIMIT) if check is not None else None
    out = _output_path(out, src, int8)
    part = out.with_name(f".{out.name}.part")  # renamed to `out` once checked: a failed export
    try:  # leaves an earlier file there as it was
        _export_checked(*load_model(src), src, part, int8, calib_files, check_files)
        os.replace(part, out)
    finally:
        part.unlink(missing_ok=True)
    log.info("wrote %s (%.1f MB)", out, out.stat().st_size / 1e6)
    return out
