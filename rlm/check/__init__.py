"""A static check of task files against the four rules, before anything runs.

``python -m rlm.check tasks/my_task.py[:function] [...] [--json]`` reads each
file with :mod:`ast` only: the checked file is never imported or executed, so
checking is safe on code nobody has reviewed yet. It prints one line per
finding, or one line saying the file is clean; the exit codes are
``rlm._exits``' (0 clean, 1 findings, 2 a file it cannot check, 70 a bug).

A *task* is a public module-level function whose first parameter is the
context (with ``:function``, just that one). The checker follows the context
through the task: aliases, tuple unpacking, ``open_context(...)``, containers,
``self.<attr>`` of simple classes, and into helpers that receive it (module
functions, nested functions, lambdas, comprehensions, ``parallel_map``,
``map`` and ``functools.partial``). Text that ``context_head/tail/slice/line``
return, and the chunks and matches the context functions yield, are bounded
pieces and are *not* the context.

What it reports (``Finding.rule``, with a short ``Finding.code``):

* ``rule1``: the context reaching a string or a prompt: f-strings, ``str``,
  ``repr``, ``print``, ``.format``, ``%``, ``+``, ``json.dumps``,
  ``"".join``; the context, or text holding the whole document (read from
  the file, ``context_slice(ctx, 0, len(ctx))``, every chunk joined), sent as
  the prompt or chunk of a subcall.
* ``rule2``: reaching the context outside ``rlm.context_access``: ``ctx[a:b]``,
  iteration, ``in``, ``ctx.read()`` and other methods; ``open()``,
  ``read_text()`` / ``read_bytes()`` in a task. ``len(ctx)`` is allowed.
* ``rule3``: model work that grows with the document: a ``for`` loop,
  comprehension, ``parallel_map`` or ``map`` over every match
  (``context_finditer``, ``context_search(..., max_hits=None)``), every chunk
  (``context_chunks``), every line or every position (``range(len(ctx))``)
  that makes subcalls with no bound; a ``while`` loop making subcalls with no
  counter bound. Bounds: ``max_hits=N`` (``context_search``'s default of 100
  is one), ``[:N]``, ``itertools.islice``, ``zip(range(N), ...)``, ``end=``
  on the scan, or a ``break`` / ``return`` under a test on a counter, a
  ``len()`` or the clock. A break on a model answer is not a bound. Loops that
  stream matches and aggregate in Python without subcalls are fine.
* ``rule4``: the task's answer built by the model: ``return <subcall>(...)``
  (also through a helper that returns one, or with ``.strip()`` and the like);
  ``return x`` where ``x`` is a subcall over aggregated results (a join, a
  list formatted or dumped into text, a string accumulated in a loop, or a
  "summarize these / overall / final answer" prompt); a returned dict or list
  holding such an answer. A dict built in Python (``{"findings": findings,
  "count": n}``) is fine even if its items came from subcalls, and so is one
  subcall's interpretation of one bounded chunk under a key
  (``{"tone": semantic_subcall(...)}``: Python chose the shape) and a list of
  per-chunk answers (``parallel_map`` or a comprehension).
* ``hazard`` (advice, not a rule): ``re`` / ``regex`` on the whole context
  (not guarded by the run's deadline; a bounded chunk is fine); more than
  :data:`HANDFUL` sequential subcalls in a loop where ``parallel_map`` would
  do; materialising every match of an unbounded scan (``list(...)``,
  ``sorted(...)``, a list comprehension, ``max_hits=None``); appending to a
  list for every match of an unbounded scan, with no ``if`` (a filter, a
  dedupe, a cap) around the append; a thread or process the task starts
  itself (``threading.Thread``, ``ThreadPoolExecutor`` /
  ``ProcessPoolExecutor``, ``multiprocessing``, ``os.fork``,
  ``asyncio.to_thread``, ``loop.run_in_executor``): subcalls made there run
  outside the run's budget, deadline and trace, where ``parallel_map``'s
  workers carry them (code ``H-threads``).

Passing the context to a function of another module or a builtin
(``textwrap.shorten(ctx)``, ``logging.info("%s", ctx)``) is ``rule2`` too:
such code can only read it as a string (``len``, ``isinstance``,
``getattr``, ``typing.cast`` and the like are harmless).

Limits, on purpose: module-level code is not a task and is not checked;
calls into other modules are not followed, and methods of their objects
(``logger.info(ctx)``) are not judged; a context passed through a global or
a class more complex than attributes set from constructor arguments is lost
(no finding rather than a guess).

The package: one module per rule (``_rule1`` .. ``_rule4``, ``_hazards``,
``_threads``); the flow analysis they share in layers (``_analysis`` state,
``_functions``, ``_sequences``, ``_calls``, ``_expressions``, ``_statements``)
over the values (``_values``) and frames (``_frames``) it tracks; the task
selection and entry points in ``_tasks``; the command line in ``_cli``.
"""

from __future__ import annotations

from rlm.check._cli import main
from rlm.check._findings import RULES, CheckError, Finding, format_findings
from rlm.check._hazards import HANDFUL
from rlm.check._tasks import check_path, check_source

__all__ = ["HANDFUL", "RULES", "CheckError", "Finding", "check_path", "check_source", "format_findings", "main"]
