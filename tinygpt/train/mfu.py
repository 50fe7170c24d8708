"""Model FLOPs utilisation: achieved model FLOP/s over the device's datasheet peak.

Two FLOP counts per token. ``TinyGPT.flops_per_token`` is the C = 6ND of scaling laws (causal
half of attention, no output projection). MFU here uses the convention of PaLM (Chowdhery et al.
2022, appendix B) and nanoGPT's ``estimate_mfu``, so figures compare with published ones: 6N with
the output projection's matmul in N, plus 12·L·d·T for attention counted as if unmasked.
"""

from __future__ import annotations

import torch

from tinygpt.model import TinyGPT

# Dense peak rates (FLOP/s) by device-name fragment, most specific first: bf16 tensor cores, and
# TF32 for fp32 runs (the cuda preset enables TF32). Vendor datasheets, without sparsity.
PEAKS = {
    "H200": {"bf16": 989e12, "fp32": 494e12},
    "H100 PCIe": {"bf16": 756e12, "fp32": 378e12},
    "H100": {"bf16": 989e12, "fp32": 494e12},
    "A100": {"bf16": 312e12, "fp32": 156e12},
    "L40S": {"bf16": 362e12, "fp32": 183e12},
    "L4": {"bf16": 121e12, "fp32": 60e12},
    "A10": {"bf16": 125e12, "fp32": 62.5e12},
}


def peak_flops(device_name: str, precision: str) -> float | None:
    """The datasheet peak for a CUDA device name (``torch.cuda.get_device_name``), if known."""
    for key, rates in PEAKS.items():
        if key in device_name:
            return rates[precision]
    return None


def device_peak(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None  # no meaningful tensor-core peak on CPU or MPS
    return peak_flops(torch.cuda.get_device_name(device), precision)


def mfu(model: TinyGPT, tokens_per_sec: float | None, peak: float | None) -> float | None:
    if not (peak and tokens_per_sec):
        return None
    return model.palm_flops_per_token() * tokens_per_sec / peak
