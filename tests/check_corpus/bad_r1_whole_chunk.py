"""The whole context is passed as the chunk of a subcall."""

from rlm.subcalls import semantic_subcall_choice


def classify_document(context):
    """Is this document a contract, an invoice or a letter?"""
    kind = semantic_subcall_choice(
        "What kind of document is this?",
        context,  # expect: rule1
        choices=["contract", "invoice", "letter"],
        default="letter",
    )
    return {"kind": kind, "size": len(context)}
