"""while loops bounded by a counter in the test, or by a counter and break."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall

MAX_PAGES = 3
PAGE = 5


def paged_review(context):
    """A few pages of hits, reviewed."""
    reviews = []
    pos, pages = 0, 0
    while pages < MAX_PAGES:
        hits = context_search(context, r"TODO", max_hits=PAGE, start=pos)
        if not hits:
            break
        reviews.extend(semantic_subcall("Is this TODO urgent?", context_line(context, m.start)) for m in hits)
        pos = hits[-1].end
        pages += 1
    tries = 0
    while True:
        tries += 1
        answer = semantic_subcall("Give one risk of this plan.", context_line(context, 0))
        if answer.strip() or tries >= 3:
            break
    return {"reviews": reviews, "risk": answer}
