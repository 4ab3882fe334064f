"""The Prometheus endpoint: prometheus-client's own HTTP server on ``[metrics] listen``."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from mailbot.config import PolicySettings
from mailbot.deadlines.calendar import BusinessCalendar
from mailbot.errors import ConfigError
from mailbot.metrics.collector import MailbotCollector
from mailbot.store import Database

log = logging.getLogger("mailbot.metrics")


@dataclass
class MetricsServer:
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(db: Database, calendar: BusinessCalendar, policy: PolicySettings,
                         now: Callable[[], datetime], host: str, port: int) -> MetricsServer:
    """Serve ``/metrics`` on host:port (port 0 = any free one) from a thread of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MailbotCollector(db, calendar, policy, now))
    try:
        server, thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError("metrics.listen", f"an address this host can listen on ({exc.strerror})",
                          f"{host}:{port}") from None
    log.info("metrics on http://%s:%d/metrics", host, server.server_address[1])
    return MetricsServer(server, thread)
