"""Docs that cannot rot: the config reference is what the schemas say, every field has a
description, and the site builds strictly (broken links and missing pages fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tinygpt import reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_reference_is_generated_from_the_code():
    for page, make in reference.PAGES.items():
        assert (ROOT / "docs" / "reference" / page).read_text() == make(), (
            f"docs/reference/{page} is stale: python -m tinygpt.reference docs/reference"
        )


def test_every_schema_field_and_option_has_a_description():
    assert reference.missing() == []
    assert reference.missing_options() == []


def test_the_cli_page_covers_every_console_script():
    page = reference.cli_markdown()
    for name in ("tinygpt", "tinygpt-analyze", "tinygpt-plan", "tinygpt-sample", "tinygpt-eval"):
        assert f"## `{name}`" in page
    assert "| `model` | `d64` |" in page and "| `source` | `mlflow` |" in page


def test_the_reference_covers_every_group_and_its_values():
    page = reference.markdown()
    for name in ("model/base_model", "optimizer/schedule/base_wsd", "source/base_mlflow",
                 "base_plan.plan", "hardware/base_hardware"):  # fmt: skip
        assert f"### `{name}`" in page
    assert "| `device` | `auto / cpu / mps / cuda` | `'auto'` |" in page
    assert "| `kjv_austen` |" in page and "| `slurm_gpu` |" in page  # options, by group


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    for page in ("reference/config", "reference/cli", "reference/api", "guides/laws"):
        assert (tmp_path / "site" / page / "index.html").exists()
    # mkdocstrings rendered the API from the docstrings
    api = (tmp_path / "site" / "reference" / "api" / "index.html").read_text()
    assert "from_mlflow" in api and "Runs of a sweep" in api
