"""Benchmarks: `make bench` (or `python -m bench [name ...]`) runs every bench_*.py.

Convention: each `bench_<name>.py` is a script with a `main()` that prints its
figures, one per line, and where it has an anchor (a reference measured in the
same run, on the same machine) also the ratio to it. Each runs in its own
process so peak memory figures are its own. Benchmarks print figures; they do
not assert (tests check correctness). Record the latest figures in
docs/benchmarks.md with the date and the machine.
"""
