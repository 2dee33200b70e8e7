"""A module-level helper splits the context it is given."""

from rlm.subcalls import parallel_map, semantic_subcall_choice

MAX_PARAGRAPHS = 12


def _paragraphs(doc):
    return [p for p in doc.split("\n\n") if p.strip()]  # expect: rule2


def paragraph_topics(context):
    """The topic of each of the first paragraphs."""
    paragraphs = _paragraphs(context)[:MAX_PARAGRAPHS]
    topics = parallel_map(
        lambda p: semantic_subcall_choice("Topic?", p, ["finance", "hr", "tech", "other"], default="other"),
        paragraphs,
    )
    return {"topics": topics, "paragraphs": len(paragraphs)}
