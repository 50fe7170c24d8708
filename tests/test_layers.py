"""The house plan holds: nothing in tinygpt.scaling imports a room above its own, the CLIs hold
no analysis, and the checkpoint I/O sits below both train/ and tracking/ (docs/development.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "tinygpt"

# Lower first. A module may import its own room and any room of a lower rank, never a room of
# its own rank or above: the rooms answer separate questions and meet only in study.py.
RANKS = {
    "names": 0,
    "axes": 0,
    "settings": 0,
    "interval": 0,
    "table": 1,
    "fit": 1,
    "laws": 2,
    "allocation": 3,
    "curves": 3,
    "plan": 3,
    "lr_transfer": 3,
    "lr_law": 3,
    "adaptation": 3,
    "study": 4,
    "coverage": 4,  # synthetic studies through laws and allocation, for benchmarks and tests
    "views": 5,
}


def imports(path: Path) -> set[str]:
    """Every tinygpt module ``path`` imports at run time, at the top or inside a function (an
    ``if TYPE_CHECKING:`` block names types for annotations only and is left out)."""
    tree = ast.parse(path.read_text())
    for block in ast.walk(tree):
        if isinstance(block, ast.If) and getattr(block.test, "id", "") == "TYPE_CHECKING":
            block.body = []
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tinygpt"):
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("tinygpt")}
    return found


def room(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[:2] == ["tinygpt", "scaling"] else None


SCALING = sorted((ROOT / "scaling").rglob("*.py"))


@pytest.mark.parametrize("path", SCALING, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_room_imports_a_room_at_or_above_its_own(path):
    own = path.relative_to(ROOT / "scaling").parts[0].removesuffix(".py")
    if own == "__init__":
        return
    assert own in RANKS, f"{own}: give the new room a rank in RANKS"
    for target in imports(path):
        other = room(target)
        if other is None or other == own or other not in RANKS:
            continue
        assert RANKS[other] < RANKS[own], f"{path.name} ({own}) imports {target} ({other})"


def test_the_numerical_rooms_do_not_import_the_hydra_schema_module():
    for path in SCALING:
        assert "tinygpt.config" not in imports(path), path


def test_checkpoint_io_is_imported_from_below_and_tracking_imports_nothing_of_train():
    for path in (ROOT / "tracking").rglob("*.py"):
        assert not any(m.startswith("tinygpt.train") for m in imports(path)), path
    assert (ROOT / "checkpoint.py").exists()
    assert not any(m.startswith("tinygpt.train") for m in imports(ROOT / "checkpoint.py"))


def test_the_clis_import_no_other_cli():
    clis = {"tinygpt.analyze", "tinygpt.plan", "tinygpt.sample", "tinygpt.evaluate"}
    for name in clis:
        path = ROOT / f"{name.split('.')[1]}.py"
        assert not (imports(path) & (clis - {name})), f"{name} imports another CLI"
