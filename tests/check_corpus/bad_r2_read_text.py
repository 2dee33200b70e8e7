"""Path.read_text() of the input, then the whole text in a prompt."""

from pathlib import Path

from rlm.subcalls import semantic_subcall


def action_items(context):
    """Action items from meeting notes."""
    notes = Path(context.name).read_text()  # expect: rule2
    items = semantic_subcall("List the action items.", notes)  # expect: rule1
    return {"items": [i for i in items.splitlines() if i.strip()]}
