"""The analysis state of one function body: its names, open loops and guards, and what it returned."""

from __future__ import annotations

import ast
from dataclasses import dataclass

from rlm.check._syntax import FunctionNode
from rlm.check._values import EMPTY, UNBOUNDED, Taint


@dataclass(frozen=True)
class FnRef:
    """A function as a value: its node, arguments bound by ``functools.partial``, its scope."""

    node: FunctionNode
    bound: tuple[Taint, ...] = ()
    owner: Frame | None = None  # the frame it was defined in (its closure), None at module level
    cls: str | None = None  # the class of a method
    defaults: tuple[tuple[str, Taint], ...] = ()  # parameters whose default value carries a taint


@dataclass(frozen=True)
class Summary:
    """What a call of a function gives back, and whether it asks the model."""

    ret: Taint = EMPTY
    makes_subcall: bool = False
    returns_subcall: bool = False


class Loop:
    """A loop (or comprehension) being analysed: did its body ask the model, what did it append."""

    def __init__(self, node: ast.AST, iter_taint: Taint = EMPTY) -> None:
        self.node = node
        self.iter_taint = iter_taint  # what a for loop iterates over
        self.subcall = False  # any subcall, sequential or through parallel_map
        self.sequential = False  # a subcall made directly in the body
        self.appends: list[tuple[ast.Call, tuple[ast.expr, ...]]] = []  # with the if-tests guarding each


class Frame:
    """One analysis of one function body: names and their taints, open loops and guards."""

    def __init__(self, env: dict[str, Taint], *, closure: Frame | None = None, is_task: bool = False,
                 cls: str | None = None, self_name: str | None = None) -> None:
        self.env = env
        self.closure = closure
        self.is_task = is_task
        self.cls = cls
        self.self_name = self_name
        self.ints: dict[str, int] = {}
        self.loops: list[Loop] = []
        self.guards: list[tuple[ast.expr, int]] = []  # an if-test and how many loops were open at it
        self.subcall = False
        self.returns: list[Taint] = []
        self.returns_subcall: list[bool] = []
        self.yields: list[Taint] = []  # a generator's items
        self.yields_unbounded = False  # a generator yielding inside an unbounded scan
        self.defined: list[int] = []  # function references created here

    def lookup(self, name: str) -> Taint | None:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.env:
                return frame.env[name]
            frame = frame.closure
        return None

    def int_value(self, name: str) -> int | None:
        frame: Frame | None = self
        while frame is not None:
            if name in frame.ints:
                return frame.ints[name]
            frame = frame.closure
        return None

    def in_unbounded_loop(self) -> bool:
        """Whether an open loop walks an unbounded scan of the context."""
        return any(loop.iter_taint & UNBOUNDED for loop in self.loops)

    def mark_subcall(self, *, sequential: bool) -> None:
        """The model is asked here: in every open loop, and sequentially unless through parallel_map."""
        self.subcall = True
        for loop in self.loops:
            loop.subcall = True
            loop.sequential = loop.sequential or sequential
