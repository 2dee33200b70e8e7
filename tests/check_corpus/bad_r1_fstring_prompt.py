"""An agent pastes the whole log into the prompt with an f-string."""

from rlm.subcalls import semantic_subcall


def explain_log(context):
    """What went wrong in this log?"""
    answer = semantic_subcall(f"Here is a server log:\n{context}\nWhat went wrong?", "")  # expect: rule1
    return {"answer": answer, "length": len(context)}
