"""Duplicate reports across reporters: MinHash signatures of report text in an LSH index over
the open report cases (``mailbot.similar`` is the hook intake calls; ``wiring`` builds it)."""
