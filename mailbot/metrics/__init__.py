"""Prometheus metrics for the daemon (``[metrics] listen``). Imports nothing by itself.

    collector.py  what a scrape reads from the database (one source of truth for every instance)
    server.py     the HTTP endpoint (prometheus-client), started and stopped by the daemon
"""
