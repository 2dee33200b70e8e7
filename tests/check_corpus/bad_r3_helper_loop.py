"""A helper loops over every chunk of the context it is given."""

from rlm.context_access import context_chunks
from rlm.subcalls import semantic_subcall_json


def _entities(doc):
    found = []
    for chunk in context_chunks(doc, 3000):  # expect: rule3
        answer = semantic_subcall_json('{"entities": [...]}', chunk, default={"entities": []})
        found.extend(answer.get("entities", []))
    return found


def named_entities(context):
    """Distinct named entities in the document."""
    entities = _entities(context)
    return {"entities": sorted(set(map(str, entities))), "mentions": len(entities)}
