"""Held out: a final-answer subcall over all the evidence, returned in a dict."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall

def answer(context):
    """Answer."""
    evidence = "\n".join(str(context_line(context, m.start)) for m in context_search(context, r"refund", max_hits=12))
    verdict = semantic_subcall("Based on all the evidence, give the final answer: was a refund issued?", evidence)
    return {"verdict": verdict, "evidence_lines": evidence.count("\n") + 1}  # expect: rule4
