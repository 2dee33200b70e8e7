"""``python -m rlm FILE [--task NAME] ...``: the same command line as ``rlm`` and ``run.py``."""

import sys

from rlm.cli import main

sys.exit(main())
