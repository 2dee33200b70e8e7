"""The model decides when the loop ends."""

from rlm.context_access import context_slice
from rlm.subcalls import semantic_subcall_json


def find_the_end_of_the_story(context):
    """Where the story ends, by reading on until the model says so."""
    pos, step = 0, 3000
    done = False
    while not done:  # expect: rule3
        chunk = context_slice(context, pos, pos + step)
        answer = semantic_subcall_json('Does the story end here? {"done": true|false}', chunk, default={"done": False})
        done = bool(answer.get("done"))
        pos += step
    return {"ends_near": pos}
