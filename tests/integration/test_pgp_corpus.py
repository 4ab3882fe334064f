"""The corpus's OpenPGP and S/MIME samples go through the whole intake (SQLite, the team key
configured but holding none of their keys) without an exception and with the right flags.

The repository's corpus has few such samples; the Thunderbird (MPL) and notmuch (GPL) ones are
not shipped with the code and are read, when present, from the shared corpus folder beside the
checkout (or ``MAILBOT_SHARED_CORPUS``); those tests are skipped without it.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbot.app import App
from mailbot.cases.models import Case, Message
from mailbot.config import MailboxSettings, SmtpSettings
from mailbot.ingest import ingest, read_messages
from tests import factories
from tests.pgpkeys import Home
from tests.pgpmail import Keys, pgp_settings

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MAILBOT_SHARED_CORPUS") or REPO.parent / "shared" / "corpus")
PGP_FLAGS = {"encrypted", "undecryptable", "signed", "bad-signature", "unverified-signature"}
ENC = {"encrypted", "undecryptable"}
UNVERIFIED = {"unverified-signature"}
OPENPGP = "thunderbird-comm-central/mail/test/browser/openpgp/data/eml/"
XPC = "thunderbird-comm-central/mail/components/extensions/test/xpcshell/messages/"
SMIME = "thunderbird-comm-central/mailnews/test/data/"
# The flags each sample must get, none of whose keys the team holds: encrypted mail cannot be
# read (undecryptable), signatures cannot be checked (unverified), and a signature over an
# enclosed message or over part of a message is recorded but is not the sender's.
EXPECTED: dict[str, set[str]] = {
    "notmuch/crypto/basic-encrypted.eml": ENC,
    "notmuch/crypto/encrypted-rfc822-attachment": ENC,
    "notmuch/crypto/encrypted-signed.eml": ENC,
    "notmuch/crypto/simple-encrypted": ENC,
    "notmuch/indexing/PATCH-1-2-system_data_types.7-srcfix.txt:2,S": UNVERIFIED,
    "notmuch/mangling/mixed-up.eml": ENC,  # PGP/MIME rewritten as multipart/mixed
    "notmuch/pkcs7/smime-onepart-signed.eml": {"undecryptable"},  # opaque S/MIME signature
    "notmuch/protected-headers/double-wrapped-with-phony-protected-header.eml": ENC,
    "notmuch/protected-headers/encrypted-message-with-forwarded-attachment.eml": ENC,
    "notmuch/protected-headers/nested-rfc822-message.eml": ENC,
    "notmuch/protected-headers/protected-with-legacy-display.eml": ENC,
    "notmuch/protected-headers/simple-signed-mail.eml": UNVERIFIED,
    "notmuch/protected-headers/smime-sign+enc.eml": ENC,
    "notmuch/protected-headers/subjectless-protected-header.eml": ENC,
    XPC + "encryptedNestedMessages.eml": ENC,
    XPC + "msg-with-enc-openpgp-inline.eml": ENC,
    XPC + "msg-with-enc-openpgp-attachment.eml": set(),  # an encrypted file, not the message
    OPENPGP + "alice-broken-exchange.eml": ENC,  # PGP/MIME as Exchange rewrites it
    OPENPGP + "alice-signed.eml": UNVERIFIED,
    OPENPGP + "bob-to-alice-signed-damaged-signature.eml": UNVERIFIED,
    OPENPGP + "encrypted-and-signed-alice-to-bob-nonascii.eml": ENC,
    OPENPGP + "forwarded-eml-signed-by-alice.eml": set(),
    OPENPGP + "inline-signed-latin1.eml": UNVERIFIED,
    OPENPGP + "multiple-signatures.eml": set(),
    OPENPGP + "outer-smime-bad-sig-inner-pgp-enc-sig-with-mixed.eml": ENC,
    OPENPGP + "signed-encrypted-autocrypt-gossip.eml": ENC,
    OPENPGP + "signed-with-mailman-footer.eml": set(),  # the footer is outside the signature
    OPENPGP + "sigspoof-git-commit.eml": UNVERIFIED,  # signed text dressed as encrypted
    SMIME + "smime-manual/outer-pgp-sig-inner-smime-enc.eml": ENC | UNVERIFIED,
    SMIME + "smime/alice.dsig.SHA256.multipart.eml": set(),  # S/MIME signature: not checked
    SMIME + "smime/alice.env.eml": ENC,
    SMIME + "smime/alice.env.sig.SHA256.opaque.eml": {"undecryptable"},
}
IN_REPO: dict[str, set[str]] = {"mailgun-flanker/messages/signed.eml": set()}


@pytest.fixture
def app(tmp_path: Path, team_home: Home, pgp_keys: Keys) -> Iterator[App]:
    own = "security@example.test"
    settings = factories.settings(
        tmp_path, MailboxSettings(host="127.0.0.1", username=own),
        SmtpSettings(host="127.0.0.1", from_address=f"Example Security <{own}>"))
    made = factories.app(dataclasses.replace(settings, pgp=pgp_settings(team_home, pgp_keys)))
    yield made
    made.close()


def run_through_intake(app: App, folder: Path, expected: dict[str, set[str]]) -> None:
    files = [folder / name for name in expected]
    missing = [str(f) for f in files if not f.is_file()]
    assert not missing
    counts = ingest(app.db, app.intake, read_messages(files), lambda: None)
    assert "failed" not in counts and sum(counts.values()) == len(files)
    with app.db.session() as s:
        messages = list(s.scalars(select(Message).where(Message.direction == "in")
                                  .order_by(Message.id)))
        cases = {c.id: c for c in s.scalars(select(Case))}
    assert len(messages) == len(files)
    got = {name: set(m.flags) & PGP_FLAGS for name, m in zip(expected, messages, strict=True)}
    assert got == expected
    for message in messages:
        case_flagged = "undecryptable" in cases[message.case_id].flags
        assert case_flagged == ("undecryptable" in message.flags)


def test_the_repositorys_pgp_and_smime_samples(app: App) -> None:
    run_through_intake(app, REPO / "tests" / "data" / "corpus", IN_REPO)


@pytest.mark.skipif(not (SHARED / "notmuch").is_dir(), reason="no shared corpus beside the code")
def test_the_thunderbird_and_notmuch_pgp_and_smime_samples(app: App) -> None:
    run_through_intake(app, SHARED, EXPECTED)
