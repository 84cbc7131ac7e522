r"""Benchmark suites and the ``pyg-relational`` command line. Suites return
data; :mod:`pyg_relational.bench.report` renders it."""
