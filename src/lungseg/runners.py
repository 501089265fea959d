"""Model runners: a batch of model inputs float32 Nx1xSxS -> probabilities float32 NxSxS, with
PyTorch (`TorchRunner`) or ONNX Runtime (`OnnxRunner`); `make_runner` picks one by the file.
Each carries the model's `config` (input size, fit, histogram, threshold) from the file itself."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .model import DEVICES, PRECISIONS, check_model_file, config_from_metadata

log = logging.getLogger(__name__)


class TorchRunner:
    """Batch of model inputs float32 Nx1xSxS -> probabilities float32 NxSxS with PyTorch.
    `precision` (PRECISIONS): bf16 autocast on a GPU by default; on a CPU only when asked
    for, as its masks differ from fp32 in a few boundary pixels (Dice about 0.9996): the model
    about 1.9x faster on CPUs with AVX-512 BF16 or AMX (`predict` end to end 1.7-1.8x),
    emulated and slow on others."""

    def __init__(
        self,
        path: str | Path | None,
        device: str = "auto",
        compile: bool = False,
        precision: str = "auto",
    ):
        import torch

        from .model import load_model

        self.torch = torch
        if device not in DEVICES:
            raise ValueError(f"device {device!r}: choose auto, cpu or cuda")
        if device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda: PyTorch sees no CUDA GPU here; use --device cpu/auto")
        _check_precision(precision)
        self.device = torch.device(
            "cuda" if device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
        )
        cuda = self.device.type == "cuda"
        self.bf16 = precision == "bf16-mixed" or (precision == "auto" and cuda)
        if not cuda and precision != "32-true":
            _bf16_note(self.bf16)
        model, self.config = load_model(path)
        model = model.to(self.device, memory_format=torch.channels_last)
        self.model = torch.compile(model) if compile else model
        self.compiled, self.pad_to = compile, 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        torch, n = self.torch, len(x)
        if self.compiled:  # smaller batches (a folder's last) are padded: no second compile
            self.pad_to = max(self.pad_to, n)  # `predict` sets it to its batch size
            if n < self.pad_to:
                x = np.concatenate([x, np.zeros((self.pad_to - n, *x.shape[1:]), x.dtype)])
        t = torch.from_numpy(np.ascontiguousarray(x[:, 0])).unsqueeze(1)  # one stride pattern
        t = t.to(self.device).contiguous(memory_format=torch.channels_last)
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16),
        ):
            logits = self.model(t)
        return torch.sigmoid(logits[:n].float())[:, 0].cpu().numpy()


class OnnxRunner:
    """The same contract as TorchRunner with ONNX Runtime (fp32 or int8 .onnx files). `spin`:
    let idle worker threads spin, ONNX Runtime's default; off here, because in `predict` the
    spinning takes CPU from decoding and post-processing (benchmarks/README.md)."""

    def __init__(self, path: str | Path, threads: int | None = None, spin: bool = False):
        import onnxruntime as ort

        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        if not spin:  # waiting threads sleep, leaving the CPU to decoding and post-processing
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as e:  # InvalidProtobuf, Fail, ...: a broken or truncated file
            raise ValueError(
                f"{path}: not a readable ONNX model ({e}); re-export it with `lungseg export`"
            ) from e
        self.input = self.session.get_inputs()[0].name
        # from the loaded session: reading the file again with `onnx` would double start-up
        self.config = config_from_metadata(self.session.get_modelmeta().custom_metadata_map, path)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        logits = self.session.run(None, {self.input: x.astype(np.float32, copy=False)})[0]
        prob = np.negative(logits[:, 0], dtype=np.float32)  # sigmoid, in place: 1 / (1 + e^-x)
        np.exp(prob, out=prob)
        prob += 1
        return np.reciprocal(prob, out=prob)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"--precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def _bf16_note(bf16: bool) -> None:
    """On a CPU: a warning when bf16 runs without bf16 instructions (emulated: slower than
    fp32), a hint when fp32 runs where bf16 would pay."""
    native = cpu_has_bf16()
    if bf16 and not native:
        log.warning("--precision bf16-mixed: this CPU has no bf16 instructions; PyTorch "
                    "emulates them, slower than fp32")  # fmt: skip
    elif native and not bf16:
        log.info("this CPU has bf16 instructions: predict/evaluate --precision bf16-mixed "
                 "(Segmenter(precision=...)) run the model about 1.9x faster, predict end to "
                 "end 1.7-1.8x")  # fmt: skip


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions (AVX-512 BF16 or AMX), as PyTorch sees it."""
    import torch

    cpu = getattr(torch, "cpu", None)
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(cpu, name, lambda: False)() for name in probes)


def make_runner(
    model: str | Path | None = None,
    device: str = "auto",
    compile: bool = False,
    precision: str = "auto",
):
    """A runner for a model file: .onnx -> ONNX Runtime, else PyTorch (default: shipped model;
    `compile`: torch.compile, worth its first-call minute on large folders, mostly on a GPU;
    `precision`: see TorchRunner)."""
    _check_precision(precision)
    if model is not None and Path(model).suffix.lower() == ".onnx":
        refusals = (("--compile", compile), ("--precision", precision == "bf16-mixed"),
                    ("--device cuda", device == "cuda"))  # fmt: skip
        for option, refused in refusals:
            if refused:
                raise ValueError(
                    f"{option} is for PyTorch models; an .onnx model runs as exported, on the CPU"
                )
        check_model_file(Path(model))
        return OnnxRunner(model)
    return TorchRunner(model, device, compile, precision)
