"""A subcall for every chunk of the document: cost grows with the file."""

from rlm.context_access import context_chunks
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall


def chunk_notes(context):
    """A note on every part of the document."""
    notes = publish("notes", [])
    for chunk in context_chunks(context, 4000):  # expect: rule3
        notes.append({"span": [chunk.start, chunk.end], "note": semantic_subcall("Note the key fact.", chunk)})
    return {"notes": notes, "count": len(notes)}
