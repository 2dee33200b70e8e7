"""Rule 2, always use context_access: the context reached any other way.

The context is not a string: indexing, iterating, ``in``, its string
methods, a library function reading it, and reading the input file yourself
are all findings. ``len(ctx)`` and the context object's own attributes are not.
"""

from __future__ import annotations

import ast

from rlm.check._analysis import Analysis
from rlm.check._module import CONTEXT_ATTRIBUTES, HARMLESS
from rlm.check._syntax import src
from rlm.check._values import CTX, Taint


def iterated(an: Analysis, node: ast.expr, t: Taint, how: str = "") -> None:
    """``node`` (of taint ``t``) is iterated over, by ``how`` (a builtin's name) if given."""
    if CTX in t:
        what = src(node)
        an.report(node, "R2-iter", f"{how}({what}) iterates over the context" if how
                  else f"iterating over the context ({what})")


def indexed(an: Analysis, e: ast.Subscript) -> None:
    an.report(e, "R2-subscript", f"{src(e)} indexes the context directly")


def assigned_into(an: Analysis, target: ast.Subscript) -> None:
    an.report(target, "R2-subscript", f"assigning into the context ({src(target)}) is not possible")


def contains(an: Analysis, e: ast.Compare) -> None:
    an.report(e, "R2-in", f"{src(e)} scans the context with 'in'")


def not_a_context_attribute(an: Analysis, node: ast.Attribute, attr: str, *, called: bool) -> bool:
    """``ctx.read()``, ``ctx.upper``: the context has no string methods. Whether it was reported."""
    if attr in CONTEXT_ATTRIBUTES:
        return False
    an.report(node, "R2-method", f"{src(node)}{'()' if called else ''} is not a context function: "
                                 "the context is not a string")
    return True


def reads_file(an: Analysis, e: ast.Call) -> None:
    """``open(path)``, ``Path(...).read_text()``: a task reads its input through the context, not the file."""
    an.report(e, "R2-open", f"{src(e)} reads a file directly inside a task")


def passed_outside(an: Analysis, qualname: str, e: ast.Call) -> None:
    """The context passed to a function of another module (or a builtin), which can only read it as a string."""
    if not an.module.is_known(qualname) or qualname in HARMLESS or qualname.split(".")[0] == "rlm":
        return
    for node in (*e.args, *(kw.value for kw in e.keywords)):
        if CTX in an.seen(node):
            an.report(node, "R2-external", f"the context is passed to {qualname}(), which is not a context "
                                           "function and can only read it as a string")
            return
