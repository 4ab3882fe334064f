"""``mailbot check``: is the team key usable? It must exist in ``pgp.home``, have its secret
part, not be expired or revoked (a note 30 days ahead), and sign and decrypt a test message
with the configured passphrase."""

from __future__ import annotations

from datetime import datetime, timedelta

from mailbot.pgp.gpg import Gpg, PgpError
from mailbot.pgp.settings import PgpSettings

WARN_BEFORE = timedelta(days=30)
_TEST = b"mailbot check: a test message to the team key\r\n"


def check_team_key(settings: PgpSettings, now: datetime) -> tuple[str | None, str | None]:
    """(problem, note): the problem stops ``check``; the note is worth reading."""
    try:
        gpg = Gpg(settings)
        public = gpg.key(settings.key)
        secret = gpg.key(settings.key, secret=True)
    except PgpError as exc:
        return f"pgp.home: {exc}", None
    if public is None:
        return (f"pgp.key: no key {settings.key} in {settings.home} "
                f"(import it with gpg --homedir {settings.home} --import)"), None
    if secret is None:
        return f"pgp.key: {settings.key} has no secret part in {settings.home}", None
    if public.revoked:
        return f"pgp.key: {settings.key} is revoked", None
    if public.expired or (public.expires is not None and public.expires <= now):
        return f"pgp.key: {settings.key} expired on {public.expires:%Y-%m-%d}", None
    try:
        sealed = gpg.encrypt_and_sign(_TEST, [])
        opened = gpg.decrypt(sealed)
    except PgpError as exc:
        return f"pgp: the team key cannot sign and encrypt a test message: {exc}", None
    if not opened.ok or opened.data != _TEST:
        return f"pgp: the team key cannot decrypt a test message: {opened.problem}", None
    note = None
    if public.expires is not None and public.expires - now <= WARN_BEFORE:
        note = (f"the team key {settings.key} expires on {public.expires:%Y-%m-%d}: extend it "
                f"(gpg --quick-set-expire) and publish it again")
    return None, note
