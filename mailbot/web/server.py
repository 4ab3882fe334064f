"""Serving the case view with uvicorn: alone (``mailbot web``) or in a thread beside the daemon
(``mailbot run --web``), where it has its own event loop and never holds up the daemon's."""

from __future__ import annotations

import asyncio
import logging
import threading

import uvicorn

from mailbot.config import Settings
from mailbot.errors import UsageError
from mailbot.store import latest_schema_version, schema_version
from mailbot.web.app import build_app
from mailbot.web.context import WebContext

log = logging.getLogger("mailbot.web")


def _server(settings: Settings, host: str, port: int) -> tuple[uvicorn.Server, WebContext]:
    if not settings.web.users and not settings.web.trusted_header:
        raise UsageError("the case view has nobody to let in: set web.users (see `mailbot web "
                         "hash-password`) or web.trusted_header with web.trusted_proxies")
    ctx = WebContext.build(settings)
    if schema_version(ctx.db) != latest_schema_version():
        ctx.close()
        raise UsageError(f"the database {settings.database.url} is not at the latest schema; "
                         "run: mailbot migrate")
    proxies = list(settings.web.trusted_proxies)
    config = uvicorn.Config(
        build_app(ctx), host=host, port=port, log_config=None, access_log=False,
        server_header=False, proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None,
        lifespan="off")
    return uvicorn.Server(config), ctx


def serve(settings: Settings, host: str, port: int) -> None:
    """Blocking: serve until SIGTERM or SIGINT."""
    server, ctx = _server(settings, host, port)
    log.info("case view on http://%s:%d/", f"[{host}]" if ":" in host else host, port)
    try:
        server.run()
    except SystemExit:  # uvicorn's answer to a port it cannot bind
        raise UsageError(f"the case view cannot listen on {host}:{port} (in use, or not an "
                         "address of this host)") from None
    finally:
        ctx.close()


class WebThread:
    """The case view in a thread of its own, for ``mailbot run --web``."""

    def __init__(self, settings: Settings, host: str, port: int) -> None:
        self._server, self._ctx = _server(settings, host, port)
        self._thread = threading.Thread(target=self._run, name="mailbot-web", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve())  # uvicorn leaves signals alone outside the main thread

    def start(self) -> None:
        self._thread.start()
        log.info("case view on http://%s:%d/", self._server.config.host,
                 self._server.config.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._ctx.close()
