"""itertools.islice bounds a walk over the chunks."""

import itertools

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall

MAX_CHUNKS = 4


def opening_notes(context):
    """Notes on the first few chunks."""
    notes = []
    for chunk in itertools.islice(context_chunks(context, 2000), MAX_CHUNKS):
        notes.append(semantic_subcall("Key point of this part?", chunk))
    return {"notes": notes}
