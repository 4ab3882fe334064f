"""The Starlette app: the routes, the login gate and the headers every response carries.

Nothing is served without a login except the login form itself, the stylesheet and the CSP
report sink (``PUBLIC``). The gate is middleware, so a route added later is closed by default.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mailbot.cases.models import Case, Message
from mailbot.cases.views import details_of
from mailbot.cases.vocabulary import SEVERITIES, STATUSES
from mailbot.web.access import Session
from mailbot.web.attachments import find_attachment
from mailbot.web.board import ALL, OPEN, BoardQuery, board, known_flags, summary
from mailbot.web.casepage import case_page, message_bytes
from mailbot.web.context import WebContext
from mailbot.web.render import environment
from mailbot.web.report import sla_figures

log = logging.getLogger("mailbot.web")

Scope = MutableMapping[str, Any]
Message_ = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message_]]
Send = Callable[[Message_], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PUBLIC = ("/login", "/static/", "/csp-report")
CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'; report-uri /csp-report")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_CASE_ID = re.compile(r"^[A-Z0-9]{1,16}-\d{4}-\d{1,12}$")


def build_app(ctx: WebContext) -> Starlette:
    env = environment(ctx.calendar.tz)
    cookies = _Cookies(ctx)

    def page(request: Request, name: str, status: int = 200, **values: Any) -> HTMLResponse:
        values.update(user=request.state.user, csrf=request.state.session.csrf,
                      now=ctx.now())
        return HTMLResponse(env.get_template(name).render(**values), status_code=status)

    def address(request: Request) -> str:
        return request.client.host if request.client else ""

    # -- the pages -----------------------------------------------------------------------------

    def board_page(request: Request) -> Response:
        query = BoardQuery.from_params(request.query_params)
        now = ctx.now()
        with ctx.read() as s:
            found = board(s, query, ctx.calendar, ctx.settings.policy, now)
            figures = summary(s, ctx.calendar, ctx.settings.policy, now)
            flags = known_flags(s)
        return page(request, "board.html", query=query, board=found, summary=figures,
                    flags=flags, statuses=(OPEN, ALL, *STATUSES), severities=SEVERITIES)

    def case_view(request: Request) -> Response:
        case_id = request.path_params["case_id"].upper()
        if not _CASE_ID.match(case_id):
            return page(request, "missing.html", 404, what="case")
        now = ctx.now()
        with ctx.read() as s:
            case = s.get(Case, case_id)
            data = (case_page(s, case, ctx.raw_store, ctx.calendar, ctx.settings.policy, now)
                    if case else None)
        if data is None:
            return page(request, "missing.html", 404, what="case")
        ctx.audit(actor=request.state.user, action="case-view", address=address(request),
                  case_id=case_id)
        return page(request, "case.html", page=data)

    def attachment(request: Request) -> Response:
        case_id = request.path_params["case_id"].upper()
        number: int = request.path_params["number"]
        with ctx.read() as s:
            m = s.get(Message, request.path_params["message"])
            entries = list(details_of(m).get("attachments", [])) if m else []
            if m is None or m.case_id != case_id or not 0 <= number < len(entries):
                return PlainTextResponse("no such attachment", 404)
            raw = message_bytes(s, m, ctx.raw_store)
        data = find_attachment(raw, str(entries[number].get("sha256", ""))) if raw else None
        if data is None:
            return PlainTextResponse("this attachment cannot be recovered from the stored "
                                     "message", 404)
        ctx.audit(actor=request.state.user, action="attachment-download",
                  address=address(request), case_id=case_id, message=m.id, attachment=number)
        # Never the reporter's content type, never inline, never the reporter's file name in a
        # header: a fixed name the browser will only save.
        name = f"{case_id}-{m.id}-{number + 1}.bin"
        return Response(data, media_type="application/octet-stream", headers={
            "Content-Disposition": f'attachment; filename="{name}"'})

    def report_page(request: Request) -> Response:
        months = request.query_params.get("months", "12")
        count = int(months) if months.isdigit() and 1 <= int(months) <= 36 else 12
        now = ctx.now()
        with ctx.read() as s:
            figures = sla_figures(s, ctx.calendar, ctx.settings.policy, now, count)
            counts = summary(s, ctx.calendar, ctx.settings.policy, now)
        return page(request, "report.html", figures=figures, summary=counts, months=count)

    # -- logging in and out --------------------------------------------------------------------

    def login_form(request: Request) -> Response:
        return page(request, "login.html", next=_safe_next(request.query_params.get("next")),
                    error="", passwords=ctx.access.passwords_enabled)

    async def login(request: Request) -> Response:
        session: Session = request.state.session
        peer = address(request)
        form = await request.form()
        name = str(form.get("name", ""))[:200]
        password = str(form.get("password", ""))[:1000]
        target = _safe_next(str(form.get("next", "")))
        if not _same_origin(request) or form.get("csrf") != session.csrf:
            return PlainTextResponse("the login form expired; reload it and try again", 400)
        if not ctx.access.login_allowed(peer):
            await run_in_threadpool(ctx.audit, actor=name, action="login-refused", address=peer)
            return page(request, "login.html", 429, next=target, passwords=True,
                        error="Too many wrong passwords from your address. Wait a minute.")
        ok = await run_in_threadpool(ctx.access.check_password, peer, name, password)
        await run_in_threadpool(ctx.audit, actor=name, action="login" if ok else "login-failed",
                                address=peer)
        if not ok:
            return page(request, "login.html", 401, next=target, passwords=True,
                        error="Wrong name or password.")
        response = RedirectResponse(target, 303)
        cookies.write(request, response, ctx.access.new_session(name))
        return response

    async def logout(request: Request) -> Response:
        form = await request.form()
        if not _same_origin(request) or form.get("csrf") != request.state.session.csrf:
            return PlainTextResponse("the form expired; reload the page and try again", 400)
        await run_in_threadpool(ctx.audit, actor=request.state.user, action="logout",
                                address=address(request))
        response = RedirectResponse("/login", 303)
        cookies.clear(request, response)
        return response

    async def csp_report(request: Request) -> Response:
        body = (await request.body())[:4000]
        log.warning("content security policy report: %s", body.decode("utf-8", "replace"))
        return Response(status_code=204)

    routes = [
        Route("/", board_page),
        Route("/cases/{case_id}", case_view),
        Route("/cases/{case_id}/messages/{message:int}/attachments/{number:int}", attachment),
        Route("/report", report_page),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/csp-report", csp_report, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(_static_dir())), name="static"),
    ]
    app = _CaseView(routes=routes)
    app.add_middleware(_Gate, ctx=ctx, cookies=cookies)
    return app


def _static_dir() -> Any:
    from pathlib import Path

    return Path(__file__).parent / "static"


# ---------------------------------------------------------------------------------------------
# Middleware


class _CaseView(Starlette):
    def build_middleware_stack(self) -> ASGIApp:
        # Outside Starlette's own error handler, so that a 500 page carries the headers too.
        return _SecurityHeaders(super().build_middleware_stack())


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message_) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, with_headers)


class _Gate:
    """Who is asking: a trusted proxy's header or a session cookie. Without either, only the
    public paths answer; a page asks the browser to log in, anything else gets 401."""

    def __init__(self, app: ASGIApp, ctx: WebContext, cookies: _Cookies) -> None:
        self.app = app
        self.ctx = ctx
        self.cookies = cookies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        access = self.ctx.access
        peer = request.client.host if request.client else None
        session = self.cookies.read(request)
        user = access.proxy_user(peer, request.headers) or (session.user if session else "")
        path = request.url.path
        fresh = session is None
        if session is None:
            session = access.new_session()
        scope.setdefault("state", {}).update(user=user, session=session)
        if not user and not path.startswith(PUBLIC):
            if request.method in ("GET", "HEAD") and "text/html" in request.headers.get(
                    "accept", ""):
                response: Response = RedirectResponse(
                    "/login?next=" + quote(path, safe="/"), 303)
            else:
                response = PlainTextResponse("log in first", 401)
            await response(scope, receive, send)
            return
        if fresh and path == "/login" and request.method == "GET":
            # The login form's CSRF token rides in a cookie of its own making.
            async def set_cookie(message: Message_) -> None:
                if message["type"] == "http.response.start":
                    holder = Response()
                    self.cookies.write(request, holder, session)
                    message["headers"] = [*message.get("headers", []),
                                          *[(k, v) for k, v in holder.raw_headers
                                            if k == b"set-cookie"]]
                await send(message)

            await self.app(scope, receive, set_cookie)
            return
        await self.app(scope, receive, send)


# ---------------------------------------------------------------------------------------------
# Cookies and small checks


class _Cookies:
    """The session cookie: signed, HttpOnly, SameSite=Strict, with an expiry; Secure unless the
    browser reached us over plain HTTP on loopback (the only place a Secure cookie would not be
    sent back)."""

    def __init__(self, ctx: WebContext) -> None:
        self.access = ctx.access
        self.listen_loopback = ctx.settings.web.loopback

    def secure(self, request: Request) -> bool:
        peer = request.client.host if request.client else ""
        return request.url.scheme == "https" or not (
            self.listen_loopback and peer in ("127.0.0.1", "::1"))

    def name(self, request: Request) -> str:
        # The __Host- prefix makes the browser refuse the cookie unless Secure, Path=/, no Domain.
        return "__Host-mailbot" if self.secure(request) else "mailbot"

    def read(self, request: Request) -> Session | None:
        return self.access.open(request.cookies.get(self.name(request)))

    def write(self, request: Request, response: Response, session: Session) -> None:
        response.set_cookie(self.name(request), self.access.seal(session),
                            max_age=self.access.max_age, path="/", httponly=True,
                            secure=self.secure(request), samesite="strict")

    def clear(self, request: Request, response: Response) -> None:
        response.delete_cookie(self.name(request), path="/", httponly=True,
                               secure=self.secure(request), samesite="strict")


def _same_origin(request: Request) -> bool:
    """A form post from one of our own pages. Browsers say so in Sec-Fetch-Site; the Origin of
    a page with Referrer-Policy no-referrer is "null", so it only counts when it names a site.
    Neither header is the whole defence: the form must also carry the session's CSRF token."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return origin == f"{request.url.scheme}://{request.url.netloc}"


def _safe_next(target: str | None) -> str:
    """Only a path on this site: never ``//evil.example`` or ``https://...``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target
