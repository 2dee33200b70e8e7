"""str() of the context, sliced afterwards: the whole document was already copied into a string."""

from rlm.subcalls import semantic_subcall_json


def extract_metadata(context):
    """Title and author of the document."""
    text = str(context)  # expect: rule1
    head = text[:3000]
    meta = semantic_subcall_json('Return {"title": ..., "author": ...}.', head, default={})
    return {"title": meta.get("title"), "author": meta.get("author")}
