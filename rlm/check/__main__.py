"""``python -m rlm.check PATH[:function] [...] [--json]``."""

from rlm.check._cli import main

raise SystemExit(main())
