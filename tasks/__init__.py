"""Your tasks: every public function in ``tasks/*.py`` whose first parameter is the context.

Run one by name from this directory: ``python run.py FILE --task NAME`` (or ``rlm FILE --task NAME``
once installed); ``--list-tasks`` shows them with the built-in ones, and a task here with the same
name as a built-in wins. ``example_task.py`` is the template to copy (and, in this project, the built-in
``find_errors_in_log`` and ``analyze_document``); claude.md says how to write a task.
"""
