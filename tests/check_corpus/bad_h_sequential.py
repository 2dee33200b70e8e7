"""Fifty subcalls one after another where parallel_map would do."""

from rlm.context_access import context_line, context_search
from rlm.runtime import publish
from rlm.subcalls import semantic_subcall_choice


def warning_levels(context):
    """The level of each of the first fifty warnings."""
    levels = publish("levels", [])
    for m in context_search(context, r"WARN", max_hits=50):  # expect: hazard
        levels.append(semantic_subcall_choice("Level?", context_line(context, m.start), ["minor", "major"],
                                              default="minor"))
    return {"levels": levels, "major": levels.count("major")}
