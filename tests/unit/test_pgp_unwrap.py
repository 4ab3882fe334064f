"""What the OpenPGP unwrapper makes of each way senders nest encryption and signatures, with
real GnuPG and keys the test suite makes."""

from __future__ import annotations

from email.utils import make_msgid
from pathlib import Path

import pytest

from mailbot.clock import SystemClock
from mailbot.mail.parse import parse_message
from mailbot.pgp.directory import Directory
from mailbot.pgp.gpg import Gpg
from mailbot.pgp.unwrapper import PgpUnwrapper
from tests.pgpkeys import Home
from tests.pgpmail import (
    TEAM,
    Keys,
    Person,
    autocrypt,
    header_block,
    inner_text,
    pgp_mime,
    pgp_settings,
    pgp_signed,
    plain,
)

RITA = "rita@reporter.example"
ROB = "rob@reporter.example"


@pytest.fixture
def unwrapper(team_home: Home, pgp_keys: Keys) -> PgpUnwrapper:
    return PgpUnwrapper(pgp_settings(team_home, pgp_keys), team_keys=(), clock=SystemClock())


def fields(sender: str, subject: str = "report") -> list[tuple[str, str]]:
    return [("From", sender), ("To", TEAM), ("Subject", subject),
            ("Message-ID", make_msgid(domain="reporter.example"))]


def know(team_home: Home, keys: Keys, address: str) -> None:
    team_home.import_(keys.reporters[address][1])


def test_signed_then_encrypted_is_decrypted_and_its_signature_verified(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rita = people[RITA]
    know(team_home, pgp_keys, RITA)
    entity = inner_text("signed, then encrypted\n")
    signed = pgp_signed([], entity, rita.home.sign_detached(entity, signer=rita.fpr))
    signed = signed.split(b"\r\n", 1)[1] if signed.startswith(b"\r\n") else signed
    armored = rita.home.encrypt(signed, to=pgp_keys.team_fpr)
    opened = unwrapper.unwrap(pgp_mime(fields(RITA), armored))
    assert opened is not None and not opened.problem
    assert {"encrypted", "signed"} <= set(opened.flags)
    assert opened.signature is not None and opened.signature.status == "good"
    assert opened.signature.fingerprint == rita.fpr
    assert "signed, then encrypted" in parse_message(opened.raw).own_text


def test_encrypted_then_signed_verifies_the_outside_and_decrypts_the_inside(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rob = people[ROB]
    know(team_home, pgp_keys, ROB)
    encrypted = pgp_mime([], rob.home.encrypt(inner_text("encrypted, then signed\n"),
                                              to=pgp_keys.team_fpr))
    entity = encrypted.lstrip(b"\r\n")
    raw = pgp_signed(fields(ROB), entity, rob.home.sign_detached(entity, signer=rob.fpr))
    opened = unwrapper.unwrap(raw)
    assert opened is not None and not opened.problem
    assert opened.signature is not None and opened.signature.status == "good"
    assert {"encrypted", "signed"} <= set(opened.flags)
    assert "encrypted, then signed" in parse_message(opened.raw).own_text


def test_an_altered_signed_message_is_a_bad_signature(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rita = people[RITA]
    know(team_home, pgp_keys, RITA)
    entity = inner_text("/ack\n")
    signature = rita.home.sign_detached(entity, signer=rita.fpr)
    opened = unwrapper.unwrap(pgp_signed(fields(RITA), entity.replace(b"/ack", b"/close"),
                                         signature))
    assert opened is not None and opened.signature is not None
    assert opened.signature.status == "bad" and "bad-signature" in opened.flags


def test_a_signature_by_an_unknown_key_is_recorded_as_such(
    unwrapper: PgpUnwrapper, people: dict[str, Person]
) -> None:
    rob = people[ROB]
    raw = plain(fields(ROB), rob.home.clearsign(b"inline signed text\n", signer=rob.fpr))
    opened = unwrapper.unwrap(raw)
    assert opened is not None and opened.signature is not None
    assert (opened.signature.status, opened.signature.fingerprint) == ("unknown-key", rob.fpr)
    assert "inline signed text" in parse_message(opened.raw).text_body


def test_inline_pgp_from_an_rsa_key_announced_by_autocrypt_is_read_and_the_key_recorded(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rob = people[ROB]
    armored = rob.home.encrypt(b"inline encrypted report\n", to=pgp_keys.team_fpr,
                               sign_as=rob.fpr)
    raw = plain([*fields(ROB), ("Autocrypt", autocrypt(ROB, rob.home.public(rob.fpr,
                                                                             armor=False)))],
                armored.replace(b"\n", b"\r\n"))
    opened = unwrapper.unwrap(raw)
    assert opened is not None and not opened.problem
    assert [k["result"] for k in opened.details["keys"]] == ["recorded"]
    entry = Directory(str(team_home.path)).get(ROB)
    assert entry is not None and (entry.fingerprint, entry.source) == (rob.fpr, "autocrypt")
    text = parse_message(opened.raw).own_text
    assert "inline encrypted report" in text and "BEGIN PGP" not in text
    # Signed by a key the same message announced: verified once the key is recorded.
    assert opened.signature is not None and opened.signature.status == "good"


def test_a_key_is_learned_for_the_sender_intake_reads_whatever_the_display_name_holds(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    # A Shift_JIS name ending in 0x5C ("\\"): the stdlib's address parser read the sender as
    # '\ufffd" <rob@...>' and no key was learned, while intake read rob@reporter.example.
    rob = people[ROB]
    armored = rob.home.encrypt(b"inline encrypted report\n", to=pgp_keys.team_fpr,
                               sign_as=rob.fpr)
    key = autocrypt(ROB, rob.home.public(rob.fpr, armor=False))
    raw = plain([*fields(f"NAME <{ROB}>"), ("Autocrypt", key)], armored.replace(b"\n", b"\r\n"))
    raw = raw.replace(b"NAME", b'"\x83\x5c"', 1)
    sender = parse_message(raw).sender
    assert sender is not None and sender.addr == ROB
    opened = unwrapper.unwrap(raw)
    assert opened is not None and [k["result"] for k in opened.details["keys"]] == ["recorded"]
    entry = Directory(str(team_home.path)).get(ROB)
    assert entry is not None and entry.fingerprint == rob.fpr


def test_a_forwarded_encrypted_message_is_opened_but_its_signature_is_not_the_senders(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home
) -> None:
    rita = people[RITA]
    know(team_home, pgp_keys, RITA)
    enclosed = pgp_mime(fields(RITA, "original"), rita.home.encrypt(
        inner_text("the forwarded secret\n"), to=pgp_keys.team_fpr, sign_as=rita.fpr))
    raw = header_block([*fields("alice@team.example.test", "Fwd: original"),
                        ("MIME-Version", "1.0"),
                        ("Content-Type", 'multipart/mixed; boundary="fwd"')]) + (
        b"\r\n--fwd\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n"
        b"--fwd\r\nContent-Type: message/rfc822\r\n\r\n") + enclosed + b"\r\n--fwd--\r\n"
    opened = unwrapper.unwrap(raw)
    assert opened is not None and not opened.problem and "encrypted" in opened.flags
    assert opened.signature is None  # Rita signed the enclosed message, not Alice's
    assert opened.details["signatures"][0]["covers"] == "enclosed message"
    parsed = parse_message(opened.raw)
    assert "the forwarded secret" in parsed.text_body and parsed.own_text.strip() == "See below."


@pytest.mark.parametrize("key, expected", [
    (b"-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\nnot a key\r\n"
     b"-----END PGP PUBLIC KEY BLOCK-----\r\n", "ignored: not an OpenPGP public key"),
    ("other", "ignored: the key is for another address"),
    ("huge", "ignored: empty, or larger than pgp.max_key_bytes"),
])
def test_key_attachments_that_are_not_the_senders_key_are_recorded_and_ignored(
    unwrapper: PgpUnwrapper, people: dict[str, Person], pgp_keys: Keys, team_home: Home,
    key: bytes | str, expected: str,
) -> None:
    if key == "other":
        key = pgp_keys.reporters["other@elsewhere.example"][1]
    elif key == "huge":
        key = b"-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n" + b"A" * 200_000
    assert isinstance(key, bytes)
    inner = inner_text("here is a key\n", key=key)
    raw = header_block(fields(RITA)) + inner.replace(b"Content-Type", b"MIME-Version: 1.0\r\n"
                                                     b"Content-Type", 1)
    opened = unwrapper.unwrap(raw)
    assert opened is not None
    assert [k["result"] for k in opened.details["keys"]] == [expected]
    assert Directory(str(team_home.path)).get(RITA) is None


def test_a_gpg_call_that_hangs_is_stopped_and_the_message_flagged(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, people: dict[str, Person]
) -> None:
    fake = tmp_path / "gpg"
    fake.write_text('#!/bin/sh\ncase "$*" in *--list-config*) echo "cfg:version:2.2.40";;\n'
                    '*) exec sleep 60;; esac\n')
    fake.chmod(0o755)
    settings = pgp_settings(team_home, pgp_keys, timeout_seconds=1.0)
    stuck = PgpUnwrapper(settings, team_keys=(), clock=SystemClock(),
                         gpg=Gpg(settings, binary=str(fake)))
    rita = people[RITA]
    raw = pgp_mime(fields(RITA), rita.home.encrypt(inner_text("x\n"), to=pgp_keys.team_fpr))
    opened = stuck.unwrap(raw)
    assert opened is not None and "undecryptable" in opened.flags
    assert "took longer than 1 s" in opened.problem


def test_without_gpg_an_encrypted_message_is_undecryptable_and_plain_mail_untouched(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    lost = PgpUnwrapper(pgp_settings(team_home, pgp_keys), team_keys=(), clock=SystemClock())
    armored = b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEM\r\n-----END PGP MESSAGE-----\r\n"
    opened = lost.unwrap(pgp_mime(fields(RITA), armored))
    assert opened is not None and "undecryptable" in opened.flags
    assert "gpg cannot be run" in opened.problem
    assert lost.unwrap(plain(fields(RITA), b"no pgp here\r\n")) is None
