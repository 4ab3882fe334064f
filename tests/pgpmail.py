"""OpenPGP mail built the way mail clients build it, with the test suite's own keys."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from mailbot.pgp.settings import PgpSettings
from tests.pgpkeys import Home, new_home

TEAM = "security@example.test"  # smtp.from in the test settings
B = "b0undary-pgp"


@dataclass
class Keys:
    """Keys made once per test session; each test imports them into homes of its own."""

    team_secret: bytes
    team_public: bytes
    team_fpr: str
    reporters: dict[str, tuple[bytes, bytes, str]]  # address -> (secret, public, fingerprint)


@pytest.fixture(scope="session")
def pgp_keys() -> Iterator[Keys]:
    home = new_home()
    try:
        team = home.new_key(TEAM)
        reporters = {}
        for address, algo in (("rita@reporter.example", "ed25519"),
                              ("rob@reporter.example", "rsa3072"),
                              ("alice@team.example.test", "ed25519"),
                              ("other@elsewhere.example", "ed25519")):
            fpr = home.new_key(address, algo=algo)
            reporters[address] = (home.secret(fpr), home.public(fpr), fpr)
        yield Keys(home.secret(team), home.public(team), team, reporters)
    finally:
        home.close()


@dataclass
class Person:
    home: Home
    address: str
    fpr: str

    def public(self) -> bytes:
        return self.home.public(self.fpr)


@pytest.fixture
def team_home(pgp_keys: Keys) -> Iterator[Home]:
    home = new_home()
    home.import_(pgp_keys.team_secret)
    yield home
    home.close()


@pytest.fixture
def people(pgp_keys: Keys) -> Iterator[dict[str, Person]]:
    """Each reporter with a home holding their secret key and the team's public key."""
    made = {}
    for address, (secret, _public, fpr) in pgp_keys.reporters.items():
        home = new_home()
        home.import_(secret)
        home.import_(pgp_keys.team_public)
        made[address] = Person(home, address, fpr)
    yield made
    for person in made.values():
        person.home.close()


def pgp_settings(home: Home, keys: Keys, **kwargs: object) -> PgpSettings:
    return PgpSettings(home=str(home.path), key=keys.team_fpr, **kwargs)  # type: ignore[arg-type]


def header_block(fields: list[tuple[str, str]]) -> bytes:
    return "".join(f"{name}: {value}\r\n" for name, value in fields).encode()


def inner_text(text: str, *, subject: str | None = None, key: bytes | None = None) -> bytes:
    """The entity a client encrypts: text (and the sender's key), protected Subject if given."""
    protected = f"Subject: {subject}\r\n" if subject else ""
    marker = '; protected-headers="v1"' if subject else ""
    body = text.replace("\n", "\r\n")
    if key is None:
        return (f'Content-Type: text/plain; charset="utf-8"{marker}\r\n{protected}'
                f"Content-Transfer-Encoding: 8bit\r\n\r\n{body}").encode()
    return (f'Content-Type: multipart/mixed; boundary="inner-{B}"{marker}\r\n{protected}\r\n'
            f"--inner-{B}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
            f"--inner-{B}\r\nContent-Type: application/pgp-keys; name=key.asc\r\n"
            f"Content-Disposition: attachment; filename=key.asc\r\n\r\n").encode() \
        + key.replace(b"\n", b"\r\n") + f"\r\n--inner-{B}--\r\n".encode()


def pgp_mime(headers: list[tuple[str, str]], armored: bytes) -> bytes:
    """An RFC 3156 encrypted message around ``armored``."""
    return header_block([*headers, ("MIME-Version", "1.0"), (
        "Content-Type",
        f'multipart/encrypted; protocol="application/pgp-encrypted"; boundary="{B}"')]) + (
        f"\r\nThis is an OpenPGP/MIME encrypted message\r\n--{B}\r\n"
        "Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        f"--{B}\r\nContent-Type: application/octet-stream; name=encrypted.asc\r\n\r\n"
    ).encode() + armored.replace(b"\n", b"\r\n") + f"\r\n--{B}--\r\n".encode()


def pgp_signed(headers: list[tuple[str, str]], entity: bytes, signature: bytes) -> bytes:
    return header_block([*headers, ("MIME-Version", "1.0"), (
        "Content-Type",
        f'multipart/signed; micalg=pgp-sha256; protocol="application/pgp-signature"; '
        f'boundary="s{B}"')]) + f"\r\n--s{B}\r\n".encode() + entity + (
        f"\r\n--s{B}\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n\r\n"
    ).encode() + signature.replace(b"\n", b"\r\n") + f"\r\n--s{B}--\r\n".encode()


def plain(headers: list[tuple[str, str]], body: bytes) -> bytes:
    return header_block([*headers, ("MIME-Version", "1.0"),
                         ("Content-Type", "text/plain; charset=utf-8")]) + b"\r\n" + body


def autocrypt(address: str, public_binary: bytes) -> str:
    return f"addr={address}; keydata={base64.b64encode(public_binary).decode()}"
