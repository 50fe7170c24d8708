"""The peak learning rate as a smooth law of model size, LR*(N) = c · N^(-e), from tuning trials.

A lone trial's winner per size is noisy: 8 single-seed trials gave d16 2.98e-2 and its neighbour
d24 4.17e-3, a 7x jump no smooth LR(N) has, and a width no trial saw had no value at all. Porian
et al. (2024) fit laws for the optimal LR instead; so does this. Every trial enters one fit:

    loss(N_i, lr) = a_i + k · (ln lr - ln c + e · ln N_i)²

a parabola in ln lr per size, whose vertex slides along the law, with a shared curvature k and one
baseline a_i per size (soft-L1 loss, so a diverged trial far from the vertex weighs little). Only
trials within ``window`` (a factor in LR) of each size's best enter: the parabola is the valley's
shape, not its walls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import least_squares

from tinygpt.errors import TinyGPTError


@dataclass
class LrLaw:
    coefficient: float  # c
    exponent: float  # e: LR*(N) = c · N^(-e)
    curvature: float  # k: loss per (ln lr)² away from the vertex
    sizes: list[float]  # the N of the sizes it was fitted on
    trials: int  # how many trials entered

    def __call__(self, n: float) -> float:
        return float(self.coefficient * n ** (-self.exponent))

    def to_dict(self) -> dict[str, float | int | list[float]]:
        return {
            "coefficient": self.coefficient,
            "exponent": self.exponent,
            "curvature": self.curvature,
            "sizes": self.sizes,
            "trials": self.trials,
        }


def fit(n: np.ndarray, lr: np.ndarray, loss: np.ndarray, window: float = 10.0) -> LrLaw:
    """The law through trials (size N, peak LR, final loss), every size at once."""
    n, lr, loss = (np.asarray(x, dtype=float) for x in (n, lr, loss))
    sizes = np.unique(n)
    if len(sizes) < 2:
        raise TinyGPTError("an LR law needs trials at 2 or more model sizes")
    keep = np.zeros(len(n), dtype=bool)
    for s in sizes:
        mine = n == s
        best = lr[mine][np.argmin(loss[mine])]
        keep |= mine & (np.abs(np.log(lr / best)) <= np.log(window))
    idx = np.searchsorted(sizes, n[keep])
    ln_n, ln_lr, y = np.log(n[keep]), np.log(lr[keep]), loss[keep]
    k = len(sizes)
    if len(y) < k + 3:
        raise TinyGPTError(f"{len(y)} trials near the optima are too few for an LR law")

    def residuals(p: np.ndarray) -> np.ndarray:
        a, log_k, ln_c, e = p[:k], p[k], p[k + 1], p[k + 2]
        return a[idx] + np.exp(log_k) * (ln_lr - ln_c + e * ln_n) ** 2 - y

    # Start from each size's best trial: its loss as baseline, a law through the two extremes.
    best = [lr[n == s][np.argmin(loss[n == s])] for s in sizes]
    e0 = -np.polyfit(np.log(sizes), np.log(best), 1)[0]
    c0 = np.mean(np.log(best) + e0 * np.log(sizes))
    p0 = np.r_[[loss[n == s].min() for s in sizes], np.log(0.05), c0, e0]
    res = least_squares(residuals, p0, loss="soft_l1", f_scale=0.05)
    return LrLaw(
        coefficient=float(np.exp(res.x[k + 1])),
        exponent=float(res.x[k + 2]),
        curvature=float(np.exp(res.x[k])),
        sizes=[float(s) for s in sizes],
        trials=int(keep.sum()),
    )
