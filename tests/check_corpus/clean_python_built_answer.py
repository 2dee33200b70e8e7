"""The answer is a dict built in Python, even though its items came from subcalls."""

from rlm.context_access import context_head, context_search, context_slice
from rlm.subcalls import semantic_subcall, semantic_subcall_json

MAX_HITS = 6


def contract_terms(context):
    """Parties, obligations and the governing law of a contract."""
    parties = semantic_subcall_json('{"parties": [...]}', context_head(context, 2500), default={"parties": []})
    obligations = []
    for m in context_search(context, r"(?i)\bshall\b", max_hits=MAX_HITS):
        obligations.append(semantic_subcall("State the obligation.", context_slice(context, m.start - 200, m.end + 200)))
    law = semantic_subcall("Which law governs this contract?", context_head(context, 4000))
    return {"parties": parties.get("parties", []), "obligations": obligations, "count": len(obligations),
            "governing_law": law.strip()}
