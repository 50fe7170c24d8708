"""The commands in the README and the manual still work: every `tinygpt*` command line of a bash
block composes against today's configs (a renamed field, option or group fails here), and the
blocks marked `<!-- docs-test: run -->` run for real, as a reader would type them."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tinygpt.reference import CONFIG_NAMES

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
RUN_MARK = "<!-- docs-test: run -->"


@dataclass
class Block:
    page: Path
    line: int
    text: str
    run: bool


def blocks(page: Path) -> list[Block]:
    """The page's fenced bash blocks, each with whether the line above marks it to be run."""
    out, lines = [], page.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            above = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
            out.append(Block(page, i + 1, "\n".join(lines[i + 1 : j]), above == RUN_MARK))
            i = j
        i += 1
    return out


def commands(block: Block) -> list[list[str]]:
    """Each `tinygpt*` invocation of a block as argv: continuation lines joined, comments, pipes
    and `&&` chains split off, a `.venv/bin/` prefix dropped."""
    text = block.text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        for part in re.split(r"&&|\|", line):
            # what the shell would hand the command: variables and ~ expanded
            words = [os.path.expandvars(w) for w in shlex.split(part, comments=True)]
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value tinygpt ...
                words = words[1:]
            if words and Path(words[0]).name in CONFIG_NAMES:
                found.append([Path(words[0]).name, *words[1:]])
    return found


ALL = [b for page in PAGES for b in blocks(page)]
# A placeholder (<run id>, <dir>) is for the reader to fill in: such a line cannot compose.
COMPOSABLE = [(b, argv) for b in ALL for argv in commands(b) if not any("<" in w for w in argv[1:])]


def first_of_sweep(override: str) -> str:
    """A sweep override (`model=d16,d32`, `lr=range(...)`) as its first value."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    (parsed,) = OverridesParser.create().parse_overrides([override])
    if not parsed.is_sweep_override():
        return override
    first = next(iter(parsed.sweep_string_iterator()))
    return f"{override.split('=', 1)[0]}={first}"


def test_the_pages_hold_commands_to_check():
    assert len(COMPOSABLE) >= 30, len(COMPOSABLE)
    assert sum(b.run for b in ALL) >= 2


@pytest.mark.parametrize(
    ("block", "argv"),
    COMPOSABLE,
    ids=[f"{b.page.relative_to(ROOT)}:{b.line}:{' '.join(a)[:60]}" for b, a in COMPOSABLE],
)
def test_every_documented_command_composes(block: Block, argv: list[str]):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from tinygpt.config import register_configs

    register_configs()
    overrides = [first_of_sweep(w) for w in argv[1:] if w not in ("-m", "--multirun") and "=" in w]
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(CONFIG_NAMES[argv[0]], overrides=overrides, return_hydra_config=True)
    assert cfg is not None


@pytest.mark.slow
@pytest.mark.parametrize(
    "block", [b for b in ALL if b.run], ids=lambda b: f"{b.page.relative_to(ROOT)}:{b.line}"
)
def test_marked_blocks_run_as_typed(block: Block, tmp_path: Path, cache_dir: Path):
    """In a fresh directory, with the venv's tools on PATH and the shared token cache."""
    for name in ("tests", "benchmarks"):  # paths the commands name are relative to the root
        (tmp_path / name).symlink_to(ROOT / name)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TINYGPT_CACHE": str(cache_dir),
    }
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.text],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
