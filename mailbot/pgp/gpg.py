"""The edge to GnuPG: python-gnupg over mailbot's own GnuPG home, every call under a time limit.

Everything GnuPG says is read from its status lines (``[GNUPG:] GOODSIG ...``), not from its
human messages. Library and process failures become ``PgpError`` (or ``PgpTimeout``); nothing
here logs key material, passphrases or message content.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parseaddr
from typing import Any

import gnupg

from mailbot.errors import MailbotError
from mailbot.intake.unwrap import Signature
from mailbot.pgp.settings import PgpSettings

log = logging.getLogger("mailbot.pgp")
# python-gnupg logs every status line at DEBUG and each non-zero exit at WARNING; our own
# results say what matters.
logging.getLogger("gnupg").setLevel(logging.ERROR)

_STATUS = re.compile(r"^\[GNUPG:\] (\S+) ?(.*)$")


class PgpError(MailbotError):
    """GnuPG could not do what was asked (missing, refused, broken input)."""


class PgpTimeout(PgpError):
    """A gpg call ran past ``pgp.timeout_seconds`` and was stopped."""


@dataclass(frozen=True)
class Status:
    """The status lines of one gpg call, as (keyword, argument) pairs in order."""

    lines: tuple[tuple[str, str], ...]
    returncode: int

    def has(self, keyword: str) -> bool:
        return any(k == keyword for k, _ in self.lines)

    def first(self, keyword: str) -> str | None:
        return next((v for k, v in self.lines if k == keyword), None)


@dataclass(frozen=True)
class Decrypted:
    data: bytes
    ok: bool
    problem: str  # "" when ok
    signature: Signature | None
    encrypted: bool  # it was encrypted (not merely signed)


@dataclass(frozen=True)
class KeyInfo:
    fingerprint: str
    addresses: tuple[str, ...]
    expires: datetime | None
    secret: bool
    revoked: bool
    expired: bool


class _TimedGPG(gnupg.GPG):  # type: ignore[misc]  # untyped library
    """python-gnupg with a watchdog: a call that runs past ``timeout`` has its process killed."""

    def __init__(self, *, timeout: float, **kwargs: Any) -> None:
        self.timeout = timeout  # before the constructor's own `gpg --version`
        super().__init__(**kwargs)

    def _collect_output(self, process: Any, result: Any, writer: Any = None,
                        stdin: Any = None) -> Any:
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            process.kill()

        timer = threading.Timer(self.timeout, stop)
        timer.daemon = True
        timer.start()
        try:
            return super()._collect_output(process, result, writer, stdin)
        finally:
            timer.cancel()
            result.timed_out = fired.is_set()


class Gpg:
    """GnuPG in ``settings.home``. Constructing it runs ``gpg --version``: PgpError when gpg is
    missing or the home unusable."""

    def __init__(self, settings: PgpSettings, *, binary: str = "gpg") -> None:
        self.settings = settings
        if settings.home:
            os.makedirs(settings.home, mode=0o700, exist_ok=True)
        try:
            self._gpg = _TimedGPG(timeout=settings.timeout_seconds, gpgbinary=binary,
                                  gnupghome=settings.home or None,
                                  options=["--no-auto-key-locate", "--no-auto-key-retrieve",
                                           "--no-greeting", "--ignore-time-conflict"])
        except (OSError, ValueError, RuntimeError) as exc:
            raise PgpError(f"gpg cannot be run: {exc}") from exc
        self._gpg.encoding = "utf-8"

    @property
    def passphrase(self) -> str | None:
        return self.settings.passphrase or None

    # -- one call ----------------------------------------------------------------------------

    def _checked(self, result: Any, what: str) -> Status:
        if getattr(result, "timed_out", False):
            raise PgpTimeout(f"gpg {what} took longer than {self.settings.timeout_seconds:g} s")
        lines = []
        for line in str(getattr(result, "stderr", "") or "").splitlines():
            match = _STATUS.match(line)
            if match:
                lines.append((match.group(1), match.group(2)))
        return Status(tuple(lines), int(getattr(result, "returncode", 0) or 0))

    # -- reading -----------------------------------------------------------------------------

    def decrypt(self, data: bytes) -> Decrypted:
        """Decrypt (and verify what is signed inside), or verify an inline signed message."""
        try:
            result = self._gpg.decrypt(data, passphrase=self.passphrase,
                                       extra_args=["--trust-model", "always"])
        except ValueError as exc:  # python-gnupg refuses passphrases with line breaks
            raise PgpError(f"pgp passphrase unusable: {exc}") from exc
        status = self._checked(result, "decrypt")
        encrypted = status.has("BEGIN_DECRYPTION") or status.has("ENC_TO") \
            or status.has("DECRYPTION_FAILED") or status.has("NO_SECKEY")
        signature = signature_from(status)
        if status.has("DECRYPTION_OKAY") or (not encrypted and signature is not None
                                             and status.has("PLAINTEXT")):
            return Decrypted(bytes(result.data), True, "", signature, encrypted)
        return Decrypted(b"", False, decrypt_problem(status, encrypted), signature, encrypted)

    def verify_detached(self, signed: bytes, signature: bytes) -> Signature:
        fd, path = tempfile.mkstemp(prefix="mailbot-sig-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(signature)
            result = self._gpg.verify_data(path, signed)
        finally:
            os.unlink(path)
        found = signature_from(self._checked(result, "verify"))
        return found or Signature("error")

    def addresses_of(self, fpr: str) -> tuple[str, ...]:
        info = self.key(fpr)
        return info.addresses if info else ()

    # -- keys ----------------------------------------------------------------------------------

    def key(self, fpr: str, *, secret: bool = False) -> KeyInfo | None:
        result = self._gpg.list_keys(secret=secret, keys=[fpr])
        self._checked(result, "list-keys")
        for entry in result:
            if entry.get("fingerprint", "").upper() == fpr.upper():
                return _key_info(entry, secret)
        return None

    def keys(self) -> list[KeyInfo]:
        result = self._gpg.list_keys()
        self._checked(result, "list-keys")
        secret = {e.get("fingerprint", "") for e in self._gpg.list_keys(secret=True)}
        return [_key_info(e, e.get("fingerprint", "") in secret) for e in result]

    def scan(self, data: bytes) -> list[KeyInfo]:
        """The keys in ``data`` without importing them."""
        result = self._gpg.scan_keys_mem(data)
        self._checked(result, "show-keys")
        return [_key_info(e, e.get("type") == "sec") for e in result]

    def import_for(self, data: bytes, address: str) -> list[str]:
        """Import the keys in ``data``, keeping only the user ids of ``address``; fingerprints."""
        args = ["--import-options", "import-minimal",
                "--import-filter", f"keep-uid=mbox = {address}"] if address else []
        result = self._gpg.import_keys(data, extra_args=args)
        status = self._checked(result, "import")
        return [v.split()[1].upper() for k, v in status.lines
                if k == "IMPORT_OK" and len(v.split()) > 1]

    def export_public(self, fpr: str, *, armor: bool = True) -> bytes:
        result = self._gpg.export_keys([fpr], armor=armor, minimal=True)
        if isinstance(result, bytes):
            return result
        return str(result).encode()

    # -- writing -------------------------------------------------------------------------------

    def encrypt_and_sign(self, data: bytes, recipients: list[str]) -> bytes:
        result = self._gpg.encrypt(data, [*recipients, self.settings.key],
                                   sign=self.settings.key, passphrase=self.passphrase,
                                   always_trust=True, armor=True)
        status = self._checked(result, "encrypt")
        if not status.has("END_ENCRYPTION") or not status.has("SIG_CREATED"):
            raise PgpError(f"gpg could not encrypt and sign ({_reason(status)})")
        return bytes(result.data)

    def sign_detached(self, data: bytes) -> bytes:
        result = self._gpg.sign(data, keyid=self.settings.key, passphrase=self.passphrase,
                                detach=True, binary=False)
        status = self._checked(result, "sign")
        if not status.has("SIG_CREATED"):
            raise PgpError(f"gpg could not sign ({_reason(status)})")
        return bytes(result.data)


def signature_from(status: Status) -> Signature | None:
    """The verdict on the first signature gpg reported, or None when there was none."""
    valid = status.first("VALIDSIG")
    fpr = ""
    if valid:
        parts = valid.split()
        fpr = (parts[9] if len(parts) >= 10 else parts[0]).upper()
    for keyword, verdict in (("EXPKEYSIG", "expired-key"), ("REVKEYSIG", "revoked-key"),
                             ("BADSIG", "bad"), ("EXPSIG", "expired-signature"),
                             ("GOODSIG", "good")):
        if status.has(keyword):
            return Signature(verdict, fingerprint=fpr, key_known=True)
    err = status.first("ERRSIG")
    if err is not None:
        parts = err.split()
        fpr = parts[6].upper() if len(parts) >= 7 and parts[6] != "-" else parts[0].upper()
        code = parts[5] if len(parts) >= 6 else ""
        return Signature("unknown-key" if code == "9" or status.has("NO_PUBKEY") else "error",
                         fingerprint=fpr)
    return None


def decrypt_problem(status: Status, encrypted: bool) -> str:
    if status.has("BAD_PASSPHRASE") or status.has("MISSING_PASSPHRASE"):
        return "wrong or missing passphrase for the team key (pgp.passphrase_env / _file)"
    if status.has("NO_SECKEY") and not status.has("DECRYPTION_OKAY"):
        return "not encrypted to the team key (no secret key for " + " ".join(
            v.split()[0] for k, v in status.lines if k == "NO_SECKEY") + ")"
    if status.has("NODATA") and not encrypted:
        return "no OpenPGP data (broken armor)"
    if status.has("DECRYPTION_FAILED") or status.has("BADMDC"):
        return "decryption failed (damaged or altered message)"
    return f"gpg could not decrypt ({_reason(status)})"


def _reason(status: Status) -> str:
    failure = status.first("FAILURE") or status.first("ERROR")
    return failure or f"exit status {status.returncode}"


def _key_info(entry: dict[str, Any], secret: bool) -> KeyInfo:
    addresses = []
    for uid in entry.get("uids", []):
        addr = parseaddr(str(uid))[1].lower()
        if "@" in addr:
            addresses.append(addr)
    expires_raw = entry.get("expires") or ""
    expires = datetime.fromtimestamp(int(expires_raw), UTC) if str(expires_raw).isdigit() \
        else None
    validity = str(entry.get("trust") or "")
    return KeyInfo(fingerprint=str(entry.get("fingerprint", "")).upper(),
                   addresses=tuple(dict.fromkeys(addresses)), expires=expires, secret=secret,
                   revoked=validity == "r", expired=validity == "e")
