"""Rule 4, construct final answers in Python: the task's result must not be the model's.

A task returning a subcall's answer, or a subcall's answer over aggregated
results (a "summarize everything" call), lets the model build the answer. A
dict or list built in Python is fine even if its items came from subcalls.
"""

from __future__ import annotations

import ast
import re

from rlm.check._analysis import Analysis
from rlm.check._frames import Frame
from rlm.check._syntax import src, string_constants
from rlm.check._values import AGG, SUBCALL, SUBCALL_AGG, ULIST, Taint

_SUMMARIZE_ALL = re.compile(
    r"(?i)\bfinal (answer|report|summary|verdict)\b|\boverall\b"
    r"|\b(summari[sz]e|combine|merge|synthesi[sz]e|aggregate)\b[^.?!]*"
    r"\b(all|every\w*|these|those|findings|results|notes|answers|summaries)\b")


def aggregates(input_taint: Taint, node: ast.expr, role: str) -> bool:
    """Whether a subcall's prompt or chunk hands the model aggregated results to build an answer from."""
    if input_taint & {AGG, ULIST}:  # the whole document is rule 1's, not an aggregate
        return True
    return role == "prompt" and bool(_SUMMARIZE_ALL.search(string_constants(node)))


def returned(an: Analysis, value: ast.expr, t: Taint, fr: Frame) -> None:
    """Judge what a task returns (``t`` is its taint)."""
    if isinstance(value, ast.Call) and SUBCALL in t:
        an.report(value, "R4-return", "the task returns a subcall's answer as its result")
        return
    if isinstance(value, ast.Name) and SUBCALL_AGG in t:
        an.report(value, "R4-aggregate", f"the task returns {value.id}, a subcall's answer over aggregated "
                                         "results (a 'summarize everything' call)")
        return
    if isinstance(value, (ast.Dict, ast.List, ast.Tuple)):
        if isinstance(value, ast.Dict) and any(k is None for k in value.keys):
            return  # {**other, ...}: built from more than is visible here
        items = value.values if isinstance(value, ast.Dict) else value.elts
        taints = [an.peek(v, fr) if isinstance(v, ast.Name) else an.seen(v) for v in items]
        for item, it in zip(items, taints):
            if SUBCALL_AGG in it and (isinstance(item, ast.Name) or (isinstance(item, ast.Call) and SUBCALL in it)):
                an.report(item, "R4-aggregate", f"the returned {src(item)} is a subcall's answer over "
                                                "aggregated results (a 'summarize everything' call)")
                return
