"""μP's coordinate check (Yang et al. 2022, §D): how large each layer's activations get after a
few Adam steps, as the model widens.

Under SP the residual stream and the logits grow with width once training moves the weights (an
update of fixed size summed over d inputs); under μP they stay put. ``slopes`` gives, per layer, the
slope of log RMS against log width: ≈ 0 is μP working, ≳ 0.5 is SP's blow-up.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tinygpt.model import GPTConfig, TinyGPT
from tinygpt.train.optim import param_groups


@dataclass(frozen=True)
class CoordCheck:
    """RMS of each layer's output (``rms[layer][width]``: one value per step, 1..steps)."""

    widths: list[int]
    rms: dict[str, dict[int, list[float]]]

    def slopes(self, step: int = -1) -> dict[str, float]:
        """Per layer, d log RMS / d log width at ``step`` (least squares over the widths)."""
        x = np.log(self.widths)
        return {
            layer: float(np.polyfit(x, np.log([by_width[w][step] for w in self.widths]), 1)[0])
            for layer, by_width in self.rms.items()
        }


def _layer_rms(model: TinyGPT, batch: torch.Tensor) -> dict[str, float]:
    outputs: dict[str, torch.Tensor] = {}
    hooks = [model.drop.register_forward_hook(lambda m, i, o: outputs.__setitem__("embedding", o))]
    for i, block in enumerate(model.blocks):
        hooks.append(
            block.register_forward_hook(lambda m, inp, o, i=i: outputs.__setitem__(f"block {i}", o))
        )
    with torch.no_grad():
        outputs["logits"], _ = model(batch)
    for h in hooks:
        h.remove()
    return {k: float(v.float().pow(2).mean().sqrt()) for k, v in outputs.items()}


def run(
    tokens: np.ndarray,
    widths: list[int],
    parametrization: str,
    vocab_size: int,
    steps: int = 5,
    lr: float = 1e-2,
    n_layers: int = 2,
    n_heads: int = 4,
    context: int = 64,
    batch_size: int = 16,
    base_width: int = 32,
    seed: int = 0,
) -> CoordCheck:
    """Train each width for ``steps`` AdamW steps on windows of ``tokens`` (the same windows for
    every width) and record the RMS of every layer's output on a fixed batch after each step."""
    gen = torch.Generator().manual_seed(seed)
    stream = torch.from_numpy(np.asarray(tokens[: 64 * context * batch_size], dtype=np.int64))
    starts = torch.randint(0, len(stream) - context - 1, (steps + 1, batch_size), generator=gen)
    batches = [torch.stack([stream[s : s + context + 1] for s in row]) for row in starts]
    rms: dict[str, dict[int, list[float]]] = {}
    for width in widths:
        torch.manual_seed(seed)
        model = TinyGPT(
            GPTConfig(
                vocab_size=vocab_size,
                d_model=width,
                n_layers=n_layers,
                n_heads=n_heads,
                context=context,
                parametrization=parametrization,
                base_width=base_width,
            )
        )
        opt = torch.optim.AdamW(param_groups(model, 0.0, lr), lr=lr, betas=(0.9, 0.95))
        probe = batches[-1][:, :-1]
        for t in range(steps):
            x = batches[t]
            _, loss = model(x[:, :-1], x[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for layer, value in _layer_rms(model, probe).items():
                rms.setdefault(layer, {}).setdefault(width, []).append(value)
    return CoordCheck(widths, rms)
