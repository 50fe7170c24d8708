"""μP's coordinate check on the shipped corpus: the RMS of each layer's output after 1..5 AdamW
steps at widths 32..512, under SP and under μP, and per layer the slope of log RMS against log
width (≈ 0: the width does not change what a step does; SP's grow). Writes
benchmarks/results/coord_check.json.

    python benchmarks/coord_check.py [--widths 32 64 128 256 512] [--steps 5] [--lr 1e-2]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hydra import compose, initialize_config_dir

from tinygpt.app import config_dir
from tinygpt.data.dataset import prepare
from tinygpt.train import coord_check


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--widths", nargs="+", type=int, default=[32, 64, 128, 256, 512])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lr", type=float, default=1e-2)
    args = ap.parse_args()
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("config", overrides=["tracking.enabled=false"])
    data = prepare(cfg.data, 64)
    report = {}
    for parametrization in ("sp", "mup"):
        vocab = data.tokenizer.vocab_size
        check = coord_check.run(
            data.splits["train"], args.widths, parametrization, vocab, steps=args.steps, lr=args.lr
        )
        slopes = check.slopes()
        report[parametrization] = {"rms": check.rms, "slopes": slopes}
        print(f"{parametrization}: RMS after {args.steps} steps (widths {args.widths}); slope")
        for layer, by_width in check.rms.items():
            values = " ".join(f"{by_width[w][-1]:8.3f}" for w in args.widths)
            print(f"  {layer:10} {values}   {slopes[layer]:+.3f}")
    out = Path(__file__).parent / "results" / "coord_check.json"
    out.write_text(json.dumps({"args": vars(args), **report}, indent=2))


if __name__ == "__main__":
    main()
