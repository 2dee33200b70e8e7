"""The audit report: one self-contained HTML page built from a run's JSONL trace.

``render_report(trace, out)`` reads the trace line by line through
:class:`rlm.trace.TraceReader` (a 100,000-subcall trace is never held as a list
of events), picks one run (the last one in the file unless ``run_id`` names
another) and writes a page that opens from disk with no network at all: a
coverage map of the document drawn to scale (what code searched, what it read,
what was sent to the model), spend and calls over time against the budget with
guard trips marked, a sortable, filterable table of every subcall showing the
chunk's text while the file on disk still matches the chunk's SHA-256, the
result's findings linked to the map, and the run's config, prices and budget
summary.

    python -m rlm.report run.jsonl -o report.html [--run-id ID]

The package: ``_model`` turns one run's events into what the page shows,
``_coverage`` is the map, ``_page`` writes the HTML (``report_page.html`` is its
template) and ``_cli`` is the command line.
"""

from __future__ import annotations

from rlm.errors import ReportError
from rlm.report._cli import main
from rlm.report._page import ReportStats, render_report

__all__ = ["ReportError", "ReportStats", "main", "render_report"]
