"""What an agent wrote on its first try: several rules broken in one task."""

import re

from rlm.context_access import context_chunks, context_search
from rlm.subcalls import semantic_subcall, semantic_subcall_json


def _clean(text):
    return re.sub(r"\s+", " ", text)


def analyze(context):
    """Everything about the document."""
    doc = context
    if len(doc) < 2000:
        return semantic_subcall("Analyze this short document.", _clean(doc[:2000]))  # expect: rule2, rule4
    title = semantic_subcall("What is the title?", f"{doc}"[:500])  # expect: rule1
    parts = [semantic_subcall_json('{"claims": [...]}', c, default={}) for c in context_chunks(doc)]  # expect: rule3
    claims = [claim for part in parts for claim in part.get("claims", [])]
    dates = re.findall(r"\d{4}-\d{2}-\d{2}", doc)  # expect: hazard
    refs = context_search(doc, r"\[\d+\]", max_hits=None)  # expect: hazard
    return {"title": title, "claims": claims, "dates": dates, "references": len(refs)}
