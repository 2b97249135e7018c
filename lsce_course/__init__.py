"""The course tooling: the ``lsce`` command, the exercise loader and checker, the lessons'
check tables, and the pytest plugin that reports each exercise test's outcome.

Nothing in the library (:mod:`lsce_scratch`) imports this package.
"""
