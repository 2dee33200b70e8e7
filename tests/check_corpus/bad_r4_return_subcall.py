"""The task's answer is one summarize-everything subcall."""

from rlm.context_access import context_line, context_search
from rlm.subcalls import semantic_subcall


def incident_report(context):
    """An incident report for the log."""
    findings = []
    for m in context_search(context, r"ERROR|FATAL", max_hits=10):
        findings.append(f"line {m.line}: {context_line(context, m.start)}")
    return semantic_subcall("Summarize all findings and give the final answer.", "\n".join(findings))  # expect: rule4
