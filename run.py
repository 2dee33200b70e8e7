#!/usr/bin/env python3
"""Entry point: ``python run.py FILE [--task NAME] [--cost USD] [--timeout S] ...`` (see --help).

The same command line as ``rlm`` once the package is installed (``pip install .``).
"""

import signal
import sys

if __name__ == "__main__" and hasattr(signal, "pthread_sigmask"):
    # Ctrl-C or SIGTERM while Python imports rlm waits until main() can answer it with the JSON result.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

try:
    from rlm.cli import main
except ModuleNotFoundError as missing:  # rlm's own message names the package and the command that installs it
    print(f"run.py: error: {missing}", file=sys.stderr)
    sys.exit(2)  # EXIT_USAGE: nothing was run (rlm._exits cannot be imported without the package)

if __name__ == "__main__":
    sys.exit(main())
