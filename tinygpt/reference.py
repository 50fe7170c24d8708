"""The reference pages, generated from the code: every config group with its options (the
files of ``conf/``) and every field of ``tinygpt/config.py``'s schemas with its type, default and
description; the command-line tools with what each reads and writes.

    python -m tinygpt.reference docs/reference      # writes config.md and cli.md there

A field's description is the comment block right above it and the comment on its line;
``_target_`` and ``_partial_`` are described once (the class an option builds). An option's
description is the comment at the top of its file. tests/test_reference.py checks that the
committed pages are what this writes and that no field or option lacks a description.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import inspect
import sys
import textwrap
import typing
from enum import Enum
from pathlib import Path

import tomllib
import yaml
from omegaconf import MISSING

from tinygpt import config
from tinygpt.app import config_dir

HYDRA_KEYS = {
    "_target_": "the class or function this node builds (Hydra's instantiate)",
    "_partial_": "built as a partial: the job supplies the remaining arguments",
}


@functools.lru_cache
def _source(path: str) -> tuple[list[str], ast.Module]:
    text = Path(path).read_text()
    return text.splitlines(), ast.parse(text)


def comments(cls: type) -> dict[str, str]:
    """Field name -> its description, read from the source of the module defining ``cls``."""
    lines, tree = _source(inspect.getsourcefile(cls) or "")
    node = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    out: dict[str, str] = {}
    previous_end = node.lineno  # the class line: a first field may have comments above it
    for st in node.body:
        if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
            above: list[str] = []
            i = st.lineno - 2  # the line above, 0-based; previous_end - 1 is the last statement's
            while i > previous_end - 1 and lines[i].strip().startswith("#"):
                above.insert(0, lines[i].strip().lstrip("#").strip())
                i -= 1
            source = lines[st.lineno - 1]
            trailing = source.split("  # ", 1)[1].strip() if "  # " in source else ""
            if trailing.startswith(("type:", "fmt:")):
                trailing = ""
            text = " ".join([*above, trailing]).strip()
            if text:
                out[st.target.id] = text
        previous_end = st.end_lineno or st.lineno
    return out


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(field, type, default, description) for each field of a schema dataclass; a field
    inherited from a base schema keeps the base's description unless the subclass has one."""
    found: dict[str, str] = {}
    for base in reversed(cls.__mro__):
        if dataclasses.is_dataclass(base) and base.__module__.startswith("tinygpt"):
            found |= comments(base)
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            value = f.default.value if isinstance(f.default, Enum) else f.default
            default = "required" if f.default is MISSING else repr(value)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            value = f.default_factory()  # type: ignore[misc]
            default = repr(value) if not dataclasses.is_dataclass(value) else "(below)"
        else:
            default = "required"
        hint = hints.get(f.name)
        if isinstance(hint, type) and issubclass(hint, Enum):  # its allowed values
            kind = " / ".join(m.value for m in hint)
        elif getattr(hint, "__args__", None):  # dict[int, float], int | None, ...
            kind = str(hint).replace("typing.", "")
        else:
            kind = getattr(hint, "__name__", str(hint))
        text = found.get(f.name) or HYDRA_KEYS.get(f.name, "")
        rows.append((f.name, kind, default, text))
    return rows


def schemas() -> list[tuple[str, type]]:
    """Every schema the ConfigStore holds, by its store name, plus the classes they nest."""
    from hydra.core.config_store import ConfigStore

    config.register_configs()
    seen: dict[type, str] = {}

    def walk(name: str, node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{name}/{key}" if name else key, value)
            return
        obj = getattr(node, "node", None)
        cls = getattr(obj, "_metadata", None) and obj._metadata.object_type  # type: ignore[union-attr]
        if isinstance(cls, type) and dataclasses.is_dataclass(cls) and cls not in seen:
            seen[cls] = name.removesuffix(".yaml")

    walk("", ConfigStore.instance().repo)
    # Hydra's own schemas (hydra/config) are Hydra's to document.
    out = sorted(((n, c) for c, n in seen.items() if c.__module__.startswith("tinygpt")),
                 key=lambda nc: nc[0])  # fmt: skip
    # Nested dataclasses (FitConfig inside AnalyzeConfig, ...) that the store does not name.
    for name, cls in list(out):
        for f in dataclasses.fields(cls):
            hint = typing.get_type_hints(cls).get(f.name)
            if isinstance(hint, type) and dataclasses.is_dataclass(hint) and hint not in seen:
                seen[hint] = f"{name}.{f.name}"
                out.append((seen[hint], hint))
    return out


def missing() -> list[str]:
    """Fields without a description: ``Class.field`` for each."""
    return [f"{cls.__name__}.{r[0]}" for _, cls in schemas() for r in describe(cls) if not r[3]]


CONF = Path(config_dir())  # the one `tinygpt` composes from (repository or wheel)


def _cell(text: str) -> str:
    """Text for a Markdown table cell."""
    return text.replace("|", "\\|")


def option_description(path: Path) -> str:
    """The comment block at the top of an option file (Hydra's ``# @package`` line skipped)."""
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if not ln.startswith("# @package")]
    text = []
    for ln in lines:
        if not ln.startswith("#"):
            break
        text.append(ln.lstrip("#").strip())
    return " ".join(text)


def groups() -> dict[str, list[Path]]:
    """Every config group of conf/ (``data/tokenizer``, ``hydra/launcher``, ...): its options."""
    out: dict[str, list[Path]] = {}
    for path in sorted(CONF.rglob("*.yaml")):
        group = path.parent.relative_to(CONF).as_posix()
        if group != ".":
            out.setdefault(group, []).append(path)
    return out


def missing_options() -> list[str]:
    """Option files without a description: their paths under conf/."""
    return [
        p.relative_to(CONF).as_posix() for paths in groups().values() for p in paths
        if not option_description(p)
    ]  # fmt: skip


def _target(path: Path) -> str:
    """The class an option builds: its own ``_target_`` or its ``impl``'s."""
    tree = yaml.safe_load(path.read_text()) or {}
    found = tree.get("_target_") or (tree.get("impl") or {}).get("_target_") or ""
    return f"`{found}`" if found else ""


def options_markdown() -> list[str]:
    parts = [
        "## Groups and their options",
        "",
        "Pick an option with `<group>=<option>` (`model=d128`, `data/tokenizer=bpe`); an "
        "`experiment` or `curve` option is a preset that overrides several groups at once.",
        "",
    ]
    for group, paths in groups().items():
        parts += [f"### `{group}`", "", "| option | builds | description |", "|---|---|---|"]
        for p in paths:
            parts.append(f"| `{p.stem}` | {_target(p)} | {_cell(option_description(p))} |")
        parts.append("")
    return parts


def markdown() -> str:
    parts = [
        "# Config reference",
        "",
        "Generated from `conf/` and the dataclass schemas in `tinygpt/config.py` by "
        "`python -m tinygpt.reference docs/reference`; do not edit by hand.",
        "",
        *options_markdown(),
        "## Schemas and their fields",
        "",
        "A schema's name is where Hydra's ConfigStore holds it (`base_model` is what every "
        "`conf/model/*.yaml` starts from); a field is set as `<group>.<field>=<value>` "
        "(`model.n_layers=4`, `training.tokens=2e6`).",
        "",
    ]
    for name, cls in schemas():
        parts += [f"### `{name}`: `{cls.__name__}`", ""]
        doc = inspect.getdoc(cls)
        if doc and not doc.startswith(f"{cls.__name__}("):
            parts += [" ".join(doc.split()), ""]
        parts += [*_field_table(cls), ""]
    return "\n".join(parts)


def _field_table(cls: type) -> list[str]:
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    for field_name, kind, default, text in describe(cls):
        rows.append(f"| `{field_name}` | `{_cell(kind)}` | `{_cell(default)}` | {_cell(text)} |")
    return rows


# Each command's primary config in conf/ (its schema is base_<name>).
CONFIG_NAMES = {
    "tinygpt": "config",
    "tinygpt-analyze": "analyze",
    "tinygpt-plan": "plan",
    "tinygpt-sample": "sample",
    "tinygpt-eval": "eval",
}


def scripts() -> dict[str, str]:
    """The console scripts pyproject.toml declares: name -> module."""
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return {name: target.split(":")[0] for name, target in project["scripts"].items()}


def cli_markdown() -> str:
    parts = [
        "# Command-line tools",
        "",
        "Generated from `pyproject.toml`'s scripts, each tool's module docstring and its primary "
        "config in `conf/` by `python -m tinygpt.reference docs/reference`; do not edit by "
        "hand. Every tool is a Hydra app: settings are `key=value` overrides, a group's option "
        "is `group=option`, and Hydra's own flags work — `--cfg job` prints the composed config "
        "without running, `--help` lists the groups, `-m` sweeps comma-separated values, "
        "`hydra.run.dir=<dir>` moves the output directory.",
        "",
    ]
    for name, module in scripts().items():
        config_name = CONFIG_NAMES[name]
        doc = inspect.getdoc(importlib.import_module(module)) or ""
        tree = yaml.safe_load((CONF / f"{config_name}.yaml").read_text())
        picks = [d for d in tree.get("defaults", []) if isinstance(d, dict)]
        parts += [f"## `{name}`", "", f"Module `{module}`; config `conf/{config_name}.yaml`, "
                  f"schema [`base_{config_name}`](config.md).", ""]  # fmt: skip
        head, _, rest = doc.partition("\n\n")
        summary = " ".join(head.split()).replace(f"`{name}`: ", "")
        parts += [summary[:1].upper() + summary[1:], ""]
        if rest.strip():
            parts += ["```text", textwrap.dedent(rest).strip(), "```", ""]
        if picks:
            parts += ["| group | default | options |", "|---|---|---|"]
            for pick in picks:
                ((group, default),) = pick.items()
                options = sorted(p.stem for p in (CONF / group).glob("*.yaml"))
                shown = ", ".join(f"`{o}`" for o in options)
                parts.append(f"| `{group}` | `{default or 'none'}` | {shown} |")
            parts.append("")
        schema = dict(schemas())[f"base_{config_name}"]
        parts += ["Its own settings (groups' fields: the [config reference](config.md)):", "",
                  *_field_table(schema), ""]  # fmt: skip
    return "\n".join(parts)


PAGES = {"config.md": markdown, "cli.md": cli_markdown}


if __name__ == "__main__":
    where = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/reference")
    where.mkdir(parents=True, exist_ok=True)
    for page, make in PAGES.items():
        (where / page).write_text(make())
        print(f"wrote {where / page}")
