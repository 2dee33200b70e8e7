"""``python -m rlm FILE [--task NAME] ...``: the same command line as ``rlm`` and ``run.py``."""

import signal
import sys

if hasattr(signal, "pthread_sigmask"):
    # Ctrl-C or SIGTERM while Python imports rlm waits until main() can answer it with the JSON result.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})

from rlm.cli import main  # noqa: E402 - after the signals are held back

sys.exit(main())
