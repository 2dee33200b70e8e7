"""``python -m rlm.report TRACE.jsonl -o PATH.html [--run-id ID]``."""

import sys

from rlm.report._cli import main

if __name__ == "__main__":
    sys.exit(main())
