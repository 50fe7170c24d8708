"""Docs that cannot rot: the config reference is what the schemas say, every field has a
description, and the site builds strictly (broken links and missing pages fail)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tinygpt import reference

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_reference_is_generated_from_the_schemas():
    page = (ROOT / "docs" / "reference" / "config.md").read_text()
    assert page == reference.markdown(), (
        "docs/reference/config.md is stale: python -m tinygpt.reference > docs/reference/config.md"
    )


def test_every_schema_field_has_a_description():
    assert reference.missing() == []


def test_the_reference_covers_every_group_and_its_values():
    page = reference.markdown()
    for name in ("model/base_model", "optimizer/schedule/base_wsd", "source/base_mlflow",
                 "base_plan.plan", "hardware/base_hardware"):  # fmt: skip
        assert f"## `{name}`" in page
    assert "| `device` | `auto / cpu / mps / cuda` | `'auto'` |" in page


def test_the_site_builds_strictly(tmp_path):
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "config" / "index.html").exists()
