"""What the tests share that a fixture cannot serve; the fixtures themselves are in conftest.py.

``ROOT`` is read while tests are collected (parametrize lists built from the README and the corpus), and the
``cli`` fixture's types are needed for annotations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Ran:
    """One command line run by the ``cli`` fixture: its exit code and output."""

    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, Any]:
        return json.loads(self.stdout)  # type: ignore[no-any-return]


Cli = Callable[..., Ran]
