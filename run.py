#!/usr/bin/env python3
"""Entry point: ``python run.py FILE [--task NAME] [--cost USD] [--timeout S] ...`` (see --help)."""

import sys
from pathlib import Path

# Run from anywhere: the project root holds the rlm and tasks packages.
sys.path.insert(0, str(Path(__file__).resolve().parent))

from rlm.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
