"""Command line: `lungseg train | evaluate | predict | export | phantom | demo`. Subcommands
only: each takes its flags (`cli_args.py`) and calls the module that does the work."""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings

from . import console
from .cli_args import build_parser

log = logging.getLogger("lungseg")
EXTRAS = {"lightning": "train", "albumentations": "train", "onnx": "onnx", "onnxruntime": "onnx",
          "onnxscript": "onnx"}  # fmt: skip


def _train(a) -> int:
    """Options left at None were not given: TrainConfig's defaults apply, or with --resume the
    run's own settings (runconfig.run_config)."""
    from dataclasses import fields

    from .runconfig import TrainConfig, run_config
    from .train import fit

    console.lightning_through_ours()
    given = {f.name: getattr(a, f.name, None) for f in fields(TrainConfig)}
    given = {k: v for k, v in given.items() if v is not None}
    if a.no_corruptions:
        given["corruptions"] = []
    elif a.corruptions is not None:
        given["corruptions"] = [c.strip() for c in a.corruptions.split(",") if c.strip()]
    if a.no_geometry_aug:
        given["geometry_aug"] = False
    print(fit(run_config(given, resume=a.resume), resume=a.resume))
    return 0


def _evaluate(a) -> int:
    from .evaluate import evaluate, table

    metrics = evaluate(
        a.model,
        a.data,
        a.split,
        a.out,
        datasets=a.datasets,
        limit=a.limit,
        postprocess=not a.no_postprocess,
        rebuild=not a.no_rebuild,
        run_dir=a.run,
        strict=a.strict,
        device=a.device,
        threshold=a.threshold,
        precision=a.precision,
    )
    print(table(metrics))
    return 0


def _predict(a) -> int:
    from .predict import predict_paths

    before = signal.signal(signal.SIGTERM, _terminated)  # a job's time limit: tables written
    try:
        failed = predict_paths(
            a.paths,
            a.out,
            model=a.model,
            postprocess=not a.no_postprocess,
            rebuild=not a.no_rebuild,
            batch_size=a.batch_size,
            labels=a.labels,
            overlays=not a.no_overlay,
            device=a.device,
            workers=a.workers,
            full_grid=a.full_grid,
            resume=a.resume,
            compile=a.compile,
            precision=a.precision,
        )
    finally:
        signal.signal(signal.SIGTERM, before)
    return 1 if failed else 0


def _terminated(signum, frame) -> None:
    log.error("stopped (SIGTERM): results.csv lists the films finished, --resume goes on")
    raise SystemExit(128 + signum)


def _export(a) -> int:
    from .export import export_onnx

    export_onnx(a.model, a.out, int8=a.int8, calib=a.calib, check=a.check)
    return 0


def _phantom(a) -> int:
    from .phantom import write_phantoms

    print(*write_phantoms(a.out, n=a.n, size=a.size, seed=a.seed, disease=a.disease), sep="\n")
    return 0


def _demo(a) -> int:
    from .demo import demo

    return demo(a.out, a.size, a.seed, a.model)


COMMANDS = {"train": _train, "evaluate": _evaluate, "predict": _predict, "export": _export,
            "phantom": _phantom, "demo": _demo}  # fmt: skip


def _path_said(e: OSError) -> str:
    """What went wrong with a path, e.g. a --out that is a link to nothing ("File exists")."""
    name = e.filename
    if name is None:
        return str(e.strerror or e)
    if os.path.islink(name) and not os.path.exists(name):
        return f"{name}: a link to {os.readlink(name)}, which does not exist (create it)"
    return f"{name}: {e.strerror or e}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "predict":  # films after an option: `predict a.png --labels b.png`
        args.paths += [e for e in extra if not e.startswith("-")]
        extra = [e for e in extra if e.startswith("-")]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    console.setup(args.verbose)
    warnings.filterwarnings("ignore", message=r"Image size .* decompression bomb")  # refused
    try:
        return COMMANDS[args.command](args)
    except (FileNotFoundError, ValueError) as e:
        log.error("%s", e)
        return 2
    except (FileExistsError, NotADirectoryError, PermissionError) as e:  # --out and the like
        log.error("%s; check the path (--out must be a folder you may write to)", _path_said(e))
        return 2
    except ModuleNotFoundError as e:  # an optional part: the extra that brings it
        extra = EXTRAS.get(e.name or "")
        if extra is None:
            raise
        log.error(
            "%s is not installed: install lungseg's %s extra (pip install '.[%s]' in its source "
            "folder)", e.name, extra, extra,
        )  # fmt: skip
        return 2
    except OSError as e:  # a full disk, an I/O error: what the system said, not a traceback
        where = f"{e.filename}: " if e.filename else ""
        log.error("%s%s", where, e.strerror or e, exc_info=bool(args.verbose))  # (-v: where)
        return 1
    except KeyboardInterrupt:
        resume = ": results.csv lists the films finished, --resume goes on"
        log.error("stopped%s", resume if args.command == "predict" else "")
        return 130


if __name__ == "__main__":
    sys.exit(main())
