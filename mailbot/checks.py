"""``mailbot check``: is the config usable, and can every server be reached?"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mailbot.config import Settings
from mailbot.errors import MailbotError
from mailbot.mail.credentials import Credentials
from mailbot.oauth2.tokens import TokenCache

Problem = str | None


def run_checks(settings: Settings) -> tuple[list[tuple[str, Problem]], list[tuple[str, str]]]:
    """The checks that must pass, and notes that are worth reading but need not stop anyone."""
    from mailbot.crypto.provision import check_storage
    from mailbot.oauth2.wiring import TokenCredentials, edge_credentials

    credentials = edge_credentials(settings)
    notes: list[tuple[str, str]] = []
    database, schema_note = _check_database(settings)
    storage_problem, storage_note = check_storage(settings)
    results: list[tuple[str, Problem]] = [("config", None), ("database", database),
                                          ("storage", storage_problem)]
    if schema_note:
        notes.append(("database", schema_note))
    if storage_note:
        notes.append(("storage", storage_note))
    no_token: list[TokenCache] = []
    for cache in credentials.caches:
        problem, note = _check_token(cache)
        results.append(("oauth2", problem))
        if note:
            notes.append(("oauth2", note))
        if problem is not None:
            no_token.append(cache)
    for name, check, creds in (("imap", _check_imap, credentials.imap),
                               ("smtp", _check_smtp, credentials.smtp)):
        if isinstance(creds, TokenCredentials) and any(creds.tokens is c for c in no_token):
            results.append((name, "not tried: no access token (see the oauth2 line)"))
            continue
        problem = check(settings, creds)
        results.append((name, problem))
        if problem is None and creds.mechanism != "password":
            notes.append((name, f"the server accepted the access token ({creds.mechanism})"))
        if name == "imap" and problem is None and database is None:
            try:
                notes.extend(("mailbox", line) for line in waiting_mail(settings, creds))
            except MailbotError as exc:
                notes.append(("mailbox", f"cannot tell what mail waits: {exc}"))
    results.append(("templates", _check_templates(settings)))
    if settings.securitytxt.path:
        from mailbot.securitytxt.expiry import expiry_problem

        found = expiry_problem(settings.securitytxt.path, datetime.now(UTC))
        if found is not None and found[0] == "problem":
            results.append(("security.txt", found[1]))
        elif found is not None:
            notes.append(("security.txt", found[1]))
    if settings.pgp.configured:
        from mailbot.pgp.check import check_team_key

        key_problem, key_note = check_team_key(settings.pgp, datetime.now(UTC))
        results.append(("pgp", key_problem))
        if key_note:
            notes.append(("pgp", key_note))
    if not settings.secrets.token_key:
        notes.append(("secrets", "no token key configured (secrets.token_key_env); a key "
                                 "generated on first run is kept in the database instead"))
    if not (settings.oncall.addresses or settings.oncall.rotation or settings.team.addresses):
        notes.append(("oncall", "nobody to remind: set oncall.addresses, oncall.rotation "
                                "or team.addresses"))
    return results, notes


def waiting_mail(settings: Settings, credentials: Credentials) -> list[str]:
    """What the next pass would do with the mail that waits in each watched folder (the folders
    and the database are only read). Raises MailbotError when the mailbox cannot be read."""
    from mailbot.intake.preview import preview
    from mailbot.mail.imap import ImapMailbox
    from mailbot.store import Database

    db = Database(settings.database.url)
    try:
        with ImapMailbox(settings.mailbox, credentials=credentials) as mailbox:
            found = preview(db, mailbox, settings, datetime.now(UTC))
    finally:
        db.dispose()
    lines = [f.describe() for f in found]
    if any(f.imported for f in found):
        lines.append("history is imported, not answered; [mailbox] answer_existing = true "
                     "answers it instead")
    return lines


def _check_templates(settings: Settings) -> Problem:
    """Every template, built-in or overridden, must at least compile."""
    import jinja2

    from mailbot.templates import build_environment

    env = build_environment(settings.templates.directory)
    try:
        for name in env.list_templates(extensions=["j2"]):
            env.get_template(name)
    except jinja2.TemplateError as exc:
        return f"{getattr(exc, 'name', '') or 'a template'}: {exc}"
    return None


def _check_database(settings: Settings) -> tuple[Problem, str]:
    """Reachable or not; and a note when the schema is not the latest (``run`` migrates it)."""
    from mailbot.store import Database, latest_schema_version, schema_version

    db = Database(settings.database.url)
    try:
        db.ping()
        current = schema_version(db)
    except MailbotError as exc:
        return str(exc), ""
    finally:
        db.dispose()
    if current is None:
        return None, ("empty (no mailbot schema yet): `mailbot run` creates it on start "
                      "(or `mailbot migrate` now)")
    if current != latest_schema_version():
        return None, (f"at schema {current}, not the latest: `mailbot run` upgrades it on start "
                      "(or `mailbot migrate` now)")
    return None, ""


def _check_token(cache: TokenCache) -> tuple[Problem, str]:
    """Whether the provider hands out a token, and a note saying how and until when."""
    try:
        token = cache.token()
    except MailbotError as exc:
        return str(exc), ""
    expiry = (f"expires {token.expires_at:%Y-%m-%d %H:%M:%S %Z}" if token.expires_at
              else "expiry not given")
    return None, f"token obtained via {cache.flow}, {expiry}"


def _check_imap(settings: Settings, credentials: Credentials) -> Problem:
    from mailbot.mail.imap import ImapMailbox

    try:
        with ImapMailbox(settings.mailbox, credentials=credentials) as mailbox:
            missing = [f for f in (settings.mailbox.folder, settings.mailbox.sent_folder)
                       if f and mailbox.folder_state(f) is None]
    except MailbotError as exc:
        return str(exc)
    if missing:
        return f"connected, but no folder {', '.join(repr(f) for f in missing)}"
    return None


def _check_smtp(settings: Settings, credentials: Credentials) -> Problem:
    from mailbot.mail.smtp import SmtpTransport

    async def connect() -> None:
        async with SmtpTransport(settings.smtp, credentials=credentials).connection():
            pass

    try:
        asyncio.run(connect())
    except MailbotError as exc:
        return str(exc)
    return None
