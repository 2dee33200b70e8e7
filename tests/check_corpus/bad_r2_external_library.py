"""The context handed to other libraries, which can only read it as a string."""

import logging
import textwrap

from rlm.context_access import context_head
from rlm.subcalls import semantic_subcall


def preview(context):
    """A one-line preview of the document, and what it is about."""
    short = textwrap.shorten(context, width=300)  # expect: rule2
    logging.info("checking %s", context)  # expect: rule2
    about = semantic_subcall("What is this about?", context_head(context, 1500))
    return {"preview": short, "about": about}
