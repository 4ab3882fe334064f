"""Draft advisories (CSAF 2.0, OSV) from a case: ``mailbot cases advisory ID --format ...``."""
