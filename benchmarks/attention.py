"""Causal attention kernels on the current device: forward + backward time per SDPA backend.

Which kernel `hardware.attention` should prefer is a property of the device and the shape, so
this times each of torch's backends (flash, cuDNN, memory-efficient, math) on the same tensors in
the same run and prints milliseconds and TFLOP/s (the causal half of the 4·B·H·T²·d forward
FLOPs, and 2.5× that for the backward). Writes benchmarks/results/attention.json.

    python benchmarks/attention.py --batch 64 --heads 8 --context 1024 --head-dim 64
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

BACKENDS = {
    "flash": SDPBackend.FLASH_ATTENTION,
    "cudnn": SDPBackend.CUDNN_ATTENTION,
    "efficient": SDPBackend.EFFICIENT_ATTENTION,
    "math": SDPBackend.MATH,
}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_backend(backend: SDPBackend, q, k, v, reps: int) -> float:
    """Seconds per forward + backward, after one warm-up call."""
    with sdpa_kernel(backend):
        for i in range(reps + 1):
            if i == 1:
                sync(q.device)
                t0 = time.perf_counter()
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            out.backward(torch.ones_like(out))
        sync(q.device)
    return (time.perf_counter() - t0) / reps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--context", type=int, default=256)
    ap.add_argument("--head-dim", type=int, default=32)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--json", default=str(Path(__file__).parent / "results" / "attention.json"))
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if args.dtype == "bf16" else torch.float32
    shape = (args.batch, args.heads, args.context, args.head_dim)
    q, k, v = (torch.randn(shape, device=device, dtype=dtype, requires_grad=True) for _ in "qkv")
    causal_fwd = 4 * args.batch * args.heads * args.context**2 * args.head_dim / 2
    rows = []
    print(f"{'backend':10s}{'ms fwd+bwd':>12s}{'TFLOP/s':>10s}", flush=True)
    for name, backend in BACKENDS.items():
        try:
            secs = time_backend(backend, q, k, v, args.reps)
        except RuntimeError as e:  # the backend has no kernel for this device, dtype or shape
            print(f"{name:10s}{'unavailable':>12s}  {str(e).splitlines()[0][:80]}", flush=True)
            rows.append({"backend": name, "available": False})
            continue
        tflops = 3.5 * causal_fwd / secs / 1e12
        print(f"{name:10s}{secs * 1e3:12.3f}{tflops:10.1f}", flush=True)
        rows.append({"backend": name, "available": True, "ms": secs * 1e3, "tflops": tflops})
    meta = {
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        "shape": shape,
        "dtype": args.dtype,
    }
    Path(args.json).write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
