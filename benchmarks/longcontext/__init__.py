"""Offline versions of the paper's long-context benchmarks: S-NIAH, OOLONG (trec_coarse) and OOLONG-Pairs.

- :mod:`.pool`: TREC-style questions with hidden coarse labels (the oracle's side table).
- :mod:`.generators`: seeded inputs of 2^13..2^24 tokens (bytes / 4), gold answers and manifests.
- :mod:`.questions`: question and pair-condition text, scoring (0.75^|error|, exact match, F1).
- :mod:`.oracle`: a deterministic model for ``rlm.loopback.LoopbackServer``.
- :mod:`.baselines`: the whole context in one call, and regex only.

``benchmarks/longcontext.py`` runs the sweep; import this package with
``benchmarks/`` on the path (the script) or the checkout root (the tests).
"""
