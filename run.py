#!/usr/bin/env python3
"""Entry point: ``python run.py FILE [--task NAME] [--cost USD] [--timeout S] ...`` (see --help).

The same command line as ``rlm`` once the package is installed (``pip install .``).
"""

import sys

from rlm.cli import main

if __name__ == "__main__":
    sys.exit(main())
