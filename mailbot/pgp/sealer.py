"""The outbox's ``Sealer`` for OpenPGP: mail to those whose keys we hold goes out PGP/MIME
encrypted to them and signed with the team key (RFC 3156, with the Subject also inside as a
protected header); other receipts carry the team's public key (an ``application/pgp-keys``
attachment and an ``Autocrypt`` header) when ``pgp.attach_public_key`` is set."""

from __future__ import annotations

import base64
import secrets
import textwrap

from mailbot.pgp.directory import Directory
from mailbot.pgp.entity import content_fields, header_fields, split_entity
from mailbot.pgp.gpg import Gpg
from mailbot.pgp.settings import PgpSettings

KEY_FILE_NAME = "security-team-public-key.asc"


class PgpSealer:
    def __init__(self, settings: PgpSettings, *, own_address: str, gpg: Gpg | None = None
                 ) -> None:
        self.settings = settings
        self.own_address = own_address
        self._gpg = gpg
        self.directory = Directory(settings.home)
        self._public: tuple[bytes, bytes] | None = None

    def gpg(self) -> Gpg:
        if self._gpg is None:
            self._gpg = Gpg(self.settings)
        return self._gpg

    def _keys_for(self, recipients: list[str]) -> list[str] | None:
        if not self.settings.encrypt_to_reporters or not recipients:
            return None
        entries = [self.directory.get(r) for r in recipients]
        if any(e is None for e in entries):
            return None
        return [e.fingerprint for e in entries if e is not None]

    def can_encrypt_to(self, recipients: list[str]) -> bool:
        return self._keys_for(recipients) is not None

    def seal(self, data: bytes, *, recipients: list[str], kind: str) -> bytes:
        keys = self._keys_for(recipients)
        if keys is not None:
            return self._encrypted(data, keys)
        if kind == "receipt" and self.settings.attach_public_key:
            return self._with_key(data)
        return data

    def public_key(self) -> tuple[bytes, bytes]:
        """(armored, binary) export of the team key, minimal."""
        if self._public is None:
            gpg = self.gpg()
            self._public = (gpg.export_public(self.settings.key, armor=True),
                            gpg.export_public(self.settings.key, armor=False))
        return self._public

    def _autocrypt(self) -> bytes:
        keydata = base64.b64encode(self.public_key()[1]).decode()
        lines = textwrap.wrap(f"addr={self.own_address}; keydata={keydata}", 76,
                              break_long_words=True, break_on_hyphens=False)
        return ("Autocrypt: " + "\r\n ".join(lines) + "\r\n").encode()

    def _encrypted(self, data: bytes, keys: list[str]) -> bytes:
        head, body = split_entity(data)
        fields = header_fields(head)
        outer = [raw for name, raw in fields if not content_fields(name)]
        subject = b"".join(raw for name, raw in fields if name in ("subject", "from", "to"))
        content = _content_type_protected(fields)
        inner = content + subject + b"\r\n" + body
        armored = self.gpg().encrypt_and_sign(inner, keys)
        boundary = "encrypted-" + secrets.token_hex(12)
        extra = [self._autocrypt()] if self.settings.attach_public_key else []
        return (b"".join([*outer, *extra]) + b"MIME-Version: 1.0\r\n"
                + f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
                  f'\r\n boundary="{boundary}"\r\n\r\n'.encode()
                + b"This is an OpenPGP/MIME encrypted message (RFC 3156).\r\n"
                + f"--{boundary}\r\n".encode()
                + b"Content-Type: application/pgp-encrypted\r\n"
                + b"Content-Description: PGP/MIME version identification\r\n\r\n"
                + b"Version: 1\r\n\r\n"
                + f"--{boundary}\r\n".encode()
                + b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n'
                + b"Content-Description: OpenPGP encrypted message\r\n"
                + b'Content-Disposition: inline; filename="encrypted.asc"\r\n\r\n'
                + armored.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
                + f"\r\n--{boundary}--\r\n".encode())

    def _with_key(self, data: bytes) -> bytes:
        head, body = split_entity(data)
        fields = header_fields(head)
        outer = [raw for name, raw in fields if not content_fields(name)]
        content = b"".join(raw for name, raw in fields
                           if content_fields(name) and name != "mime-version")
        armored = self.public_key()[0].replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        boundary = "key-" + secrets.token_hex(12)
        return (b"".join([*outer, self._autocrypt()]) + b"MIME-Version: 1.0\r\n"
                + f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
                + f"--{boundary}\r\n".encode() + content + b"\r\n" + body
                + (b"" if body.endswith(b"\n") else b"\r\n")
                + f"--{boundary}\r\n".encode()
                + f'Content-Type: application/pgp-keys; name="{KEY_FILE_NAME}"\r\n'.encode()
                + b"Content-Description: OpenPGP public key of the security team\r\n"
                + f'Content-Disposition: attachment; filename="{KEY_FILE_NAME}"\r\n\r\n'
                  .encode()
                + armored + (b"" if armored.endswith(b"\n") else b"\r\n")
                + f"--{boundary}--\r\n".encode())


def _content_type_protected(fields: list[tuple[str, bytes]]) -> bytes:
    """The content fields, the Content-Type marked as carrying protected headers."""
    out = b""
    for name, raw in fields:
        if not content_fields(name) or name == "mime-version":
            continue
        if name == "content-type":
            raw = raw.rstrip(b"\r\n") + b'; protected-headers="v1"\r\n'
        out += raw
    return out
