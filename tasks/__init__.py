"""Your tasks: every public function in ``tasks/*.py`` whose first parameter is the context.

Run one by name from this directory: ``python run.py FILE --task NAME`` (or ``rlm FILE --task NAME``
once installed); ``--list-tasks`` shows them with the built-in ones (``rlm/tasks/``), and a task here
with the same name as a built-in wins. See claude.md for how to write one.
"""
