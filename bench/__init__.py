"""mailbot's benchmark suite: ``python -m bench [--quick]``. See docs/benchmarks.md."""
