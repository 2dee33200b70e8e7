"""Per-chunk notes in Python, then the model writes the final report that is returned."""

from rlm.context_access import context_search, context_slice
from rlm.subcalls import parallel_map, semantic_subcall


def weekly_report(context):
    """A weekly report on the incidents in the log."""
    hits = context_search(context, r"INCIDENT", max_hits=10)
    notes = parallel_map(lambda m: semantic_subcall("One-line note.", context_slice(context, m.start, m.end + 300)),
                         hits)
    digest = ""
    for note in notes:
        digest += "- " + note + "\n"
    report = semantic_subcall("Write the weekly report from these notes.", digest)
    report = report.strip()
    return report  # expect: rule4
