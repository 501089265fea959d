"""Average the weights of several models of the same network ("model soup"), tensor by tensor.

Used for the model card's weight-averaging experiment (stages 5 and 6, both fine-tuned from stage
4); the result is a normal lungseg model file with the first model's config:

    python benchmarks/soup.py --out soup.safetensors stage5.safetensors stage6.safetensors
    lungseg evaluate --data ../shared/data --split val --model soup.safetensors --out eval/soup
"""

from __future__ import annotations

import argparse

from lungseg.model import load_model, save_safetensors


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("models", nargs="+", help=".safetensors or .ckpt files of one architecture")
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)

    loaded = [load_model(m) for m in a.models]
    model, config = loaded[0]
    if any(c.encoder != config.encoder for _, c in loaded):
        raise SystemExit("all models must have the same encoder")
    states = [m.state_dict() for m, _ in loaded]
    averaged = {
        k: sum(s[k] for s in states) / len(states) if v.is_floating_point() else v
        for k, v in states[0].items()
    }
    model.load_state_dict(averaged)
    save_safetensors(model, config, a.out, {"averaged_from": a.models})
    print(f"wrote {a.out}: the mean of {len(states)} models")


if __name__ == "__main__":
    main()
