"""The config reference, generated from the schemas: every group, option and field of
``tinygpt/config.py`` with its type, default and description, as Markdown.

    python -m tinygpt.reference > docs/reference/config.md

A field's description is the comment block right above it and the comment on its line;
``_target_`` and ``_partial_`` are described once (the class an option builds).
tests/test_reference.py checks that the committed page is what this prints and that no field
lacks a description.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import inspect
import typing
from enum import Enum
from pathlib import Path

from omegaconf import MISSING

from tinygpt import config

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


def markdown() -> str:
    parts = [
        "# Config reference",
        "",
        "Generated from the dataclass schemas in `tinygpt/config.py` by "
        "`python -m tinygpt.reference`; do not edit by hand. A schema's name is where Hydra's "
        "ConfigStore holds it (`base_model` is what every `conf/model/*.yaml` starts from).",
        "",
    ]
    for name, cls in schemas():
        parts += [f"## `{name}`: `{cls.__name__}`", ""]
        doc = inspect.getdoc(cls)
        if doc and not doc.startswith(f"{cls.__name__}("):
            parts += [" ".join(doc.split()), ""]
        parts += ["| field | type | default | description |", "|---|---|---|---|"]
        for field_name, kind, default, text in describe(cls):
            cell = text.replace("|", "\\|")
            kind_cell = kind.replace("|", "\\|")
            default_cell = default.replace("|", "\\|")
            parts.append(f"| `{field_name}` | `{kind_cell}` | `{default_cell}` | {cell} |")
        parts.append("")
    return "\n".join(parts)


if __name__ == "__main__":
    print(markdown(), end="")
