"""The code habits CI holds the tree to: ruff's lint rules, ruff's formatting, and mypy's type check.

Each tool runs from the repository root with its settings from pyproject.toml; a test fails with the
tool's own report, so the fix is readable in the CI log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Every Python package and folder of scripts in the repository.
PYTHON_TREES = ["app", "trainer", "tests", "bench", "migrations"]


def _run(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"{' '.join(args)} reported:\n{result.stdout}{result.stderr}", pytrace=False)


def test_ruff_finds_no_lint_error():
    _run("ruff", "check", *PYTHON_TREES)


def test_code_is_formatted_by_ruff():
    _run("ruff", "format", "--check", *PYTHON_TREES)


@pytest.mark.slow  # about 40 s without mypy's cache
def test_mypy_finds_no_type_error():
    # The checked packages (app and trainer) are [tool.mypy]'s `files` in pyproject.toml.
    _run("mypy")
