"""Rule 1, never load the context into prompts: how text is built, and the context reaching it.

Each function here evaluates one way of building text (an f-string, ``+``,
``%``, ``str()``, ``json.dumps``, ``"".join``, ``.format``) and says what
the text holds; the context itself reaching it is a finding. So is the
context, or text holding the whole document, sent to the model.
"""

from __future__ import annotations

import ast

from rlm.check._analysis import Analysis
from rlm.check._frames import Frame
from rlm.check._syntax import src
from rlm.check._values import (
    AGG,
    ANSWERS,
    CTX,
    LIST,
    STRINGIFIED,
    ULIST,
    UNBOUNDED,
    WHOLE,
    Label,
    Taint,
    count,
    elems,
    wrap,
)

#: Builtins that turn their arguments into text.
STRINGIFY = frozenset({"str", "repr", "ascii", "format", "print"})
_TEXT = frozenset({WHOLE, STRINGIFIED, AGG})


def _formatted(t: Taint) -> set[Label]:
    """What text formatted from a value with taint ``t`` holds (the context itself is reported apart)."""
    out: set[Label] = set(t & _TEXT)
    if t & {LIST, ULIST} or count(t) is not None:
        out.add(AGG)  # a list formatted into the text
    return out


def fstring(an: Analysis, e: ast.JoinedStr, fr: Frame) -> Taint:
    out: set[Label] = set()
    for value in e.values:
        if not isinstance(value, ast.FormattedValue):
            continue
        t = an.eval(value.value, fr)
        if value.format_spec is not None:
            an.eval(value.format_spec, fr)
        if CTX in t:
            an.report(e, "R1-fstring", f"the context ({src(value.value)}) is formatted into an f-string")
            out.add(STRINGIFIED)
        out |= _formatted(t)
    return frozenset(out)


def binop(an: Analysis, e: ast.BinOp, fr: Frame) -> Taint:
    """``a + b`` (concatenation) and ``a % b`` (%-formatting); other operators give a number."""
    left, right = an.eval(e.left, fr), an.eval(e.right, fr)
    out: set[Label] = set()
    if isinstance(e.op, ast.Add):
        if CTX in left or CTX in right:
            an.report(e, "R1-concat", f"the context is concatenated with a string in {src(e)}")
            out.add(STRINGIFIED)
        both = left | right
        out |= both & (_TEXT | UNBOUNDED | {LIST})
        out |= wrap(elems(both))
    elif isinstance(e.op, ast.Mod):
        if CTX in right or CTX in elems(right):
            an.report(e, "R1-format", f"the context is %-formatted into a string in {src(e)}")
            out.add(STRINGIFIED)
        out |= (right | elems(right)) & _TEXT
        if elems(right) & {LIST, ULIST} or (right & {LIST, ULIST} and not isinstance(e.right, ast.Tuple)):
            out.add(AGG)  # a list formatted into the text
    return frozenset(out)


def added_in_place(an: Analysis, s: ast.AugAssign, t: Taint) -> Taint:
    """``text += value``: the context added to a string is reported, and is then only stringified."""
    if isinstance(s.op, (ast.Add, ast.Mod)) and CTX in t:
        an.report(s, "R1-concat", f"the context ({src(s.value)}) is added to a string")
        return t - {CTX} | {STRINGIFIED}
    return t


def stringify(an: Analysis, name: str, e: ast.Call, args: tuple[Taint, ...]) -> Taint:
    """``str(x)``, ``repr(x)``, ``format(x)``, ``print(x)``."""
    out: set[Label] = set()
    for node, t in zip(e.args, args):
        if CTX in t:
            an.report(node, "R1-str", f"{name}({src(node)}) turns the whole context into a string")
            out.add(STRINGIFIED)
        out |= _formatted(t) | (t & ANSWERS)
    return frozenset(out) if name != "print" else frozenset()


def json_dumps(an: Analysis, e: ast.Call, args: tuple[Taint, ...]) -> Taint:
    if args and (CTX in args[0] or CTX in elems(args[0])):
        an.report(e, "R1-json", f"{src(e)} turns the context into a string")
        return frozenset({STRINGIFIED})
    return frozenset({AGG}) | (args[0] & {WHOLE} if args else frozenset())


def join(an: Analysis, e: ast.Call, args: tuple[Taint, ...]) -> Taint:
    """``sep.join(items)``: joining every chunk or match of the document gives the whole document back."""
    items = args[0] if args else frozenset()
    if CTX in items:
        an.report(e, "R1-join", f"{src(e)} joins the characters of the whole context into a string")
        return frozenset({STRINGIFIED, AGG})
    out: set[Label] = {AGG} | (elems(items) & {WHOLE, STRINGIFIED})
    if items & UNBOUNDED:
        out.add(WHOLE)  # every chunk, line or match of the document, in one string
    return frozenset(out)


def format_method(an: Analysis, e: ast.Call, args: tuple[Taint, ...], kwargs: dict[str, Taint]) -> Taint | None:
    """``"...".format(ctx)``; None when the context is not among the arguments."""
    if any(CTX in t for t in (*args, *kwargs.values())):
        an.report(e, "R1-format", f"{src(e)} formats the context into a string")
        return frozenset({STRINGIFIED})
    return None


def sent_to_model(an: Analysis, node: ast.expr, role: str, subcall: str) -> None:
    """The prompt or chunk of a subcall must not be the context, nor text holding the whole document."""
    t = an.seen(node)
    if CTX in t:
        an.report(node, "R1-subcall", f"the whole context is sent as the {role} of {subcall}")
    elif WHOLE in t:
        an.report(node, "R1-whole-text", f"text holding the whole document ({src(node)}) is sent as the "
                                         f"{role} of {subcall}")

