"""Helpers shared by the tests and the benchmarks: plain builders and reference procedures, no tests.

``tests/`` is on ``sys.path`` (pytest's ``pythonpath`` setting; ``benchmarks/common.tests_on_path``),
so they import as ``support.<module>``. The pytest fixtures that wrap the builders live in
``tests/conftest.py``, which builds each session fixture once per run.
"""
