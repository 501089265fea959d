"""The network (segmentation-models-pytorch DeepLabV3+) and self-describing weight files.

A model file carries its own `ModelConfig` (encoder, input size, preprocessing), so predict,
evaluate and export need only the file: fp16 safetensors (shipped), Lightning .ckpt (training).
"""

from __future__ import annotations

import difflib
import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where it is used: ONNX inference runs without it
    import torch

log = logging.getLogger(__name__)

ENCODERS = ("resnet50", "resnet34", "resnet18", "mobilenet_v2", "efficientnet-b0")
# SMP's DeepLabV3+ runs its encoder at output stride 16: input sides must be multiples of 16
STRIDE = 16
DEFAULT_WEIGHTS = Path(__file__).parent / "weights" / "lungseg_deeplabv3plus_resnet50.safetensors"
# --precision of train, evaluate and predict (Lightning's names); auto: bf16-mixed on a GPU only
PRECISIONS = ("auto", "32-true", "bf16-mixed")
DEVICES = ("auto", "cpu", "cuda")  # where a model runs (auto: a CUDA GPU when there is one)


@dataclass
class ModelConfig:
    """What a weight file needs to be used: architecture and preprocessing."""

    encoder: str = "resnet50"
    size: int = 512
    fit: str = "letterbox"
    hist: str = "equalize"
    threshold: float = 0.5

    def __post_init__(self):
        check_size(self.size)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def check_size(size) -> None:
    """ValueError unless `size` (the square input side) is a positive multiple of STRIDE."""
    if isinstance(size, bool) or not isinstance(size, int) or size < STRIDE or size % STRIDE:
        raise ValueError(
            f"input size {size!r} (--size): DeepLabV3+ needs a positive multiple of {STRIDE}, "
            "e.g. 256 or 512"
        )


def build_model(encoder: str = "resnet50") -> torch.nn.Module:
    """DeepLabV3+ (ASPP + decoder) on `encoder`, 1 input channel, 1 output logit map; ValueError
    for an encoder SMP does not have or cannot use in DeepLabV3+."""
    import segmentation_models_pytorch as smp

    names = smp.encoders.get_encoder_names()
    if encoder not in names and not encoder.startswith("tu-"):
        close = difflib.get_close_matches(encoder, names, n=3, cutoff=0.6)
        raise ValueError(
            f"unknown encoder {encoder!r}"
            + (f" (did you mean {', '.join(close)}?)" if close else "")
            + f"; tested: {', '.join(ENCODERS)}; all: "
            "segmentation_models_pytorch.encoders.get_encoder_names() or tu-<timm model>"
        )
    if encoder not in ENCODERS:
        log.warning("encoder %r is not one of the tested %s; trying it with SMP", encoder, ENCODERS)
    try:
        return smp.DeepLabV3Plus(
            encoder_name=encoder, encoder_weights=None, in_channels=1, classes=1
        )
    except (KeyError, ValueError, RuntimeError) as e:  # e.g. no dilated mode, unknown timm model
        raise ValueError(
            f"encoder {encoder!r} cannot be used in DeepLabV3+ ({e}); tested: {', '.join(ENCODERS)}"
        ) from e


def load_encoder_weights(model: torch.nn.Module, path: str | Path, encoder: str = "") -> None:
    """Load local ImageNet weights (a torchvision/timm state dict, .pth or .safetensors) into the
    encoder (`encoder`: its name, for messages); RGB first convolution is summed to 1 channel.
    Nothing is downloaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--encoder-weights {path}: file not found (e.g. save "
            "torchvision.models.resnet50(weights='IMAGENET1K_V2').state_dict())"
        )
    state = _read_state_dict(path)
    own = model.encoder.state_dict()
    adapted, unused = {}, []
    for k, v in state.items():
        k = k.removeprefix("module.").removeprefix("encoder.")
        if k not in own:
            if not k.startswith(("fc.", "classifier.", "head.")):
                unused.append(k)
            continue
        if v.ndim == 4 and own[k].shape[1] == 1 and v.shape[1] == 3:
            v = v.sum(dim=1, keepdim=True)
        if v.shape == own[k].shape:
            adapted[k] = v
    needed = [k for k in own if not k.endswith("num_batches_tracked")]
    matched = sum(k in adapted for k in needed)
    if matched < 0.95 * len(needed) or len(unused) > 0.05 * len(needed):
        name = encoder or type(model.encoder).__name__
        raise ValueError(
            f"{path} does not fit the {name} encoder, not loaded: it lacks "
            f"{len(needed) - matched} of {name}'s {len(needed)} tensors and has {len(unused)} that "
            f"{name} does not (weights of another encoder? --encoder-weights needs --encoder's)"
        )
    model.encoder.load_state_dict(adapted, strict=False)
    log.info("loaded %d/%d encoder tensors from %s", len(adapted), len(own), path)


def _read_state_dict(path: Path) -> dict:
    """{name: tensor} from a .safetensors file or a torch.save'd state dict; ValueError naming the
    file for anything else (a whole pickled model, a truncated or foreign file)."""
    import torch

    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            state = state.get("state_dict", state) if isinstance(state, dict) else state
        reason = "" if isinstance(state, dict) else f"it holds a {type(state).__name__}"
    except Exception as e:  # pickle, torch and safetensors raise many types for a foreign file
        reason = type(e).__name__
    if reason or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"--encoder-weights {path}: not a readable state dict ({reason or 'not all tensors'})"
            "; expected torch.save(model.state_dict(), 'x.pth') or a .safetensors file of "
            "tensors (not a whole pickled model)"
        )
    return state


def load_init(model: torch.nn.Module, path: str | Path, encoder: str) -> None:
    """Copy a lungseg model file's weights (`--init`: .safetensors or .ckpt) into `model`, a
    DeepLabV3+ on `encoder`; the input size may differ (fine-tuning at another size)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"--init {path}: file not found; pass a model file from `lungseg train` "
            "(RUN/model.safetensors or RUN/checkpoints/best.ckpt)"
        )
    if path.suffix.lower() not in (".safetensors", ".ckpt"):
        raise ValueError(
            f"--init {path}: training starts only from a .safetensors or .ckpt model file "
            "(an .onnx file cannot be trained; use the model it was exported from)"
        )
    source, config = load_model(path)
    if config.encoder != encoder:
        raise ValueError(
            f"--init {path} holds a {config.encoder} network, not {encoder}: pass "
            f"--encoder {config.encoder}, or an --init model trained with {encoder}"
        )
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as e:
        raise ValueError(f"--init {path}: its weights do not fit a {encoder} DeepLabV3+") from e
    log.info("initialised from %s (%s, trained at %d px)", path, config.encoder, config.size)


def save_safetensors(
    model: torch.nn.Module,
    config: ModelConfig,
    path: str | Path,
    metadata: dict | None = None,
    films: dict[tuple[str, str], str] | None = None,
) -> None:
    """Save weights as fp16 safetensors with the config (and optional notes) in the metadata;
    `films`: (dataset, id) -> split of the films it was trained and selected on (`trained_on`)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu") for k, v in model.state_dict().items()}
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    meta = {"lungseg_config": json.dumps(asdict(config))}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    if films:
        meta[TRAINED_ON] = films_json(films)
    save_file(state, str(path), metadata=meta)


def config_from_metadata(meta: dict | None, path: str | Path) -> ModelConfig:
    """The ModelConfig in a weight file's string metadata (safetensors or ONNX)."""
    if not meta or "lungseg_config" not in meta:
        raise ValueError(f"{path}: no lungseg config inside; make it with `lungseg train/export`")
    return ModelConfig.from_dict(json.loads(meta["lungseg_config"]))


def read_config(path: str | Path) -> ModelConfig:
    """The ModelConfig stored in a .safetensors, .ckpt or .onnx model file."""
    path = Path(path)
    if path.suffix.lower() in (".onnx", ".safetensors"):
        return config_from_metadata(file_metadata(path), path)
    return ModelConfig.from_dict(_read_ckpt(path)["hyper_parameters"])


TRAINED_ON = "lungseg_trained_on"  # metadata: the films a model was trained and selected on


def trained_on(path: str | Path) -> dict[tuple[str, str], str]:
    """(dataset, id) -> "train" or "val" for the films a .safetensors or .onnx model was trained
    and selected on, as `lungseg train` records them (export copies them); empty when the file
    does not say (the shipped model, files of lungseg before 2026-12-07, checkpoints)."""
    path = Path(path)
    meta = file_metadata(path) if path.suffix.lower() in (".onnx", ".safetensors") else {}
    listing = json.loads(meta.get(TRAINED_ON) or "{}")
    return {tuple(f.split("/", 1)): split for split, films in listing.items() for f in films}


def films_json(films: dict[tuple[str, str], str]) -> str:
    """`trained_on`'s films as a model file's metadata holds them: {split: ["dataset/id"]}."""
    listing: dict[str, list[str]] = {}
    for (dataset, film), split in sorted(films.items()):
        listing.setdefault(split, []).append(f"{dataset}/{film}")
    return json.dumps(listing)


def file_metadata(path: Path) -> dict[str, str]:
    """A .safetensors or .onnx file's string metadata."""
    if path.suffix.lower() == ".onnx":
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in model.metadata_props}
    from safetensors import safe_open

    with safe_open(str(path), "numpy") as f:
        return f.metadata() or {}


def _read_ckpt(path: Path) -> dict:
    import torch

    # weights_only: a checkpoint from elsewhere cannot run code while it is read (pickle);
    # `lungseg train`'s checkpoints hold only tensors, numbers, strings and containers
    return torch.load(path, map_location="cpu", weights_only=True)


def check_model_file(path: Path) -> None:
    """Raise FileNotFoundError, saying what to pass, unless `path` is a file."""
    if not path.is_file():
        what = "is a folder, not a model file" if path.is_dir() else "not found"
        raise FileNotFoundError(
            f"model file {path} {what}; pass --model FILE (a .safetensors, "
            ".ckpt from `lungseg train`, or .onnx; a run folder holds model.safetensors)"
        )


def load_model(path: str | Path | None = None) -> tuple[torch.nn.Module, ModelConfig]:
    """Load a .safetensors (default: the shipped model) or Lightning .ckpt -> (fp32 eval model,
    config)."""
    path = Path(path) if path else DEFAULT_WEIGHTS
    check_model_file(path)
    if path.suffix.lower() not in (".safetensors", ".ckpt"):
        raise ValueError(f"{path}: unknown model format; use .safetensors, .ckpt or .onnx")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            config = read_config(path)
            state = load_file(str(path))
        else:
            ckpt = _read_ckpt(path)
            config = ModelConfig.from_dict(ckpt["hyper_parameters"])
            state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
        model = build_model(config.encoder)
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
        )
    except ValueError:
        raise
    except Exception as e:  # safetensors, torch and pickle raise many types for a broken file
        raise ValueError(
            f"{path}: not a readable lungseg model ({type(e).__name__}: {e}); is the file "
            "complete? Re-download or re-export it"
        ) from e
    return model.eval(), config
