"""Held out: a class method formats self.document."""

from rlm.context_access import context_search, context_line
from rlm.subcalls import semantic_subcall

class Analyzer:
    def __init__(self, document):
        self.document = document

    def run(self):
        return f"Analyze: {self.document}"  # expect: rule1

def analyze(context):
    """Analysis."""
    a = Analyzer(context)
    return {"a": semantic_subcall(a.run(), "")}
