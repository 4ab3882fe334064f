"""Intake's ``Unwrapper`` for OpenPGP: decrypt, verify, learn the sender's key.

Never raises: gpg missing, a wrong passphrase, a time limit passed, a message not encrypted to
us all end as an ``Unwrapped`` with a ``problem`` (the case is flagged ``undecryptable``).
"""

from __future__ import annotations

import logging
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from mailbot.clock import Clock
from mailbot.intake.unwrap import (
    BAD_SIGNATURE,
    ENCRYPTED,
    SIGNED,
    UNDECRYPTABLE,
    UNVERIFIED_SIGNATURE,
    Signature,
    Unwrapped,
)
from mailbot.mail.parse import header_block_sender
from mailbot.pgp.directory import Directory
from mailbot.pgp.entity import split_entity
from mailbot.pgp.gpg import Gpg, PgpError
from mailbot.pgp.learn import autocrypt_key, learn
from mailbot.pgp.opener import Opened, open_message
from mailbot.pgp.settings import PgpSettings

log = logging.getLogger("mailbot.pgp")

_LOOKS_PGP = re.compile(
    rb"application/pgp|-----BEGIN PGP |^autocrypt:|application/(?:x-)?pkcs7-mime", re.I | re.M)
_LOOKS_ENCRYPTED = re.compile(
    rb"application/pgp-encrypted|-----BEGIN PGP MESSAGE-----|application/(?:x-)?pkcs7-mime", re.I)
MAX_AUTOCRYPT_FIELDS = 3


class PgpUnwrapper:
    def __init__(self, settings: PgpSettings, *, team_keys: tuple[str, ...], clock: Clock,
                 gpg: Gpg | None = None) -> None:
        self.settings = settings
        self.team_keys = frozenset(team_keys)
        self.clock = clock
        self._gpg = gpg
        self.directory = Directory(settings.home)

    def gpg(self) -> Gpg:
        if self._gpg is None:
            self._gpg = Gpg(self.settings)
        return self._gpg

    def unwrap(self, raw: bytes) -> Unwrapped | None:
        if not _LOOKS_PGP.search(raw):
            return None
        try:
            return self._unwrap(raw)
        except Exception as exc:  # never fail a message for what GnuPG did
            log.warning("PGP: could not open a message (%s)", type(exc).__name__)
            if _LOOKS_ENCRYPTED.search(raw):
                return Unwrapped(raw=raw, flags=(ENCRYPTED, UNDECRYPTABLE),
                                 problem=f"{type(exc).__name__}: {exc}"[:300])
            return None

    def _unwrap(self, raw: bytes) -> Unwrapped | None:
        try:
            gpg = self.gpg()
        except PgpError as exc:
            if _LOOKS_ENCRYPTED.search(raw):
                return Unwrapped(raw=raw, flags=(ENCRYPTED, UNDECRYPTABLE), problem=str(exc))
            return None
        head = split_entity(raw)[0]
        sender = _sender(head)
        opened = open_message(raw, gpg, max_key_bytes=self.settings.max_key_bytes)
        learned = self._learn(gpg, opened, head, sender)
        if any(k.get("result") == "recorded" for k in learned) and opened.signature is not None \
                and opened.signature.status == "unknown-key":
            opened = open_message(raw, gpg, max_key_bytes=self.settings.max_key_bytes)
        if not (opened.encrypted or opened.signatures or opened.problems or learned):
            return None
        signature = self._signature(gpg, opened.signature, sender)
        problem = "; ".join(dict.fromkeys(opened.problems))
        return Unwrapped(raw=opened.data, flags=_flags(opened, problem),
                         signature=signature, problem=problem,
                         details=_details(opened, learned, signature))

    def _learn(self, gpg: Gpg, opened: Opened, head: bytes,
               sender: str) -> list[dict[str, str]]:
        if not sender:
            return [{"source": "attachment", "result": "ignored: no single sender address"}
                    for _ in opened.keys]
        found = [("attachment", data) for data in opened.keys]
        fields = BytesHeaderParser(policy=compat32).parsebytes(head).get_all("autocrypt", [])
        for value in fields[:MAX_AUTOCRYPT_FIELDS]:
            data = autocrypt_key(" ".join(str(value).split()), sender)
            if data is not None:
                found.append(("autocrypt", data))
        now = self.clock.now()
        return [learn(gpg, self.directory, data, address=sender, source=source, now=now,
                      max_bytes=self.settings.max_key_bytes) for source, data in found]

    def _signature(self, gpg: Gpg, found: Signature | None, sender: str) -> Signature | None:
        if found is None:
            return None
        addresses: tuple[str, ...] = ()
        if found.fingerprint and found.status in ("good", "expired-key", "revoked-key"):
            try:
                addresses = gpg.addresses_of(found.fingerprint)
            except PgpError:
                addresses = ()
        entry = self.directory.get(sender) if sender else None
        known = found.fingerprint in self.team_keys or (
            entry is not None and entry.fingerprint == found.fingerprint)
        return Signature(found.status, fingerprint=found.fingerprint, addresses=addresses,
                         key_known=known)


def _sender(head: bytes) -> str:
    # The sender as intake reads it, so that a key is learned for the reporter the case records
    # (the stdlib's reading of ``"\x83\x5c" <rob@x>``, a Shift_JIS name, was ``\ufffd" <rob@x>``).
    sender = header_block_sender(head)
    return sender.addr if sender else ""


def _flags(opened: Opened, problem: str) -> tuple[str, ...]:
    flags = []
    if opened.encrypted:
        flags.append(ENCRYPTED)
    if problem:
        flags.append(UNDECRYPTABLE)
    if opened.signature is not None:
        status = opened.signature.status
        flags.append(SIGNED if status == "good" else
                     BAD_SIGNATURE if status == "bad" else UNVERIFIED_SIGNATURE)
    elif any(s["status"] == "bad" and s["covers"] != "enclosed message"
             for s in opened.signatures):
        flags.append(BAD_SIGNATURE)
    return tuple(flags)


def _details(opened: Opened, learned: list[dict[str, str]],
             signature: Signature | None) -> dict[str, Any]:
    details: dict[str, Any] = {"encrypted": opened.encrypted, "decrypted": opened.decrypted}
    if signature is not None:
        details["signature"] = {"status": signature.status, "fingerprint": signature.fingerprint,
                                "key_known": signature.key_known}
    if opened.signatures:
        details["signatures"] = opened.signatures[:10]
    if learned:
        details["keys"] = learned[:10]
    if opened.protected_subject:
        details["protected_subject"] = True
    return details
