"""json.dumps of a payload that holds the context."""

import json

from rlm.subcalls import semantic_subcall_json


def structured_summary(context):
    """A JSON summary of the document."""
    payload = json.dumps({"document": context, "task": "summarize"})  # expect: rule1
    summary = semantic_subcall_json("Summarize the document in the payload.", payload[:4000], default={})
    return {"summary": summary, "keys": sorted(summary)}
