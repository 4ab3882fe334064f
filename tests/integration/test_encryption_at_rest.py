"""Reports stay secret at rest: what a reporter wrote never reaches the database file in clear."""

from __future__ import annotations

import base64
import json
import quopri
import subprocess
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest

from mailbot.cli import main
from tests import factories
from tests.integration.test_cli import write_config
from tests.servers.postgres import PostgresServer

SUBJECT_MARK = "Zqxsubjectmark7"
BODY_MARK = "Zqxbodymark7"
FILE_MARK = "Zqxfilemark7"
MARKS = (SUBJECT_MARK, BODY_MARK, FILE_MARK)


def report(n: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Rita Reporter <rita{n}@reporter.example>"
    msg["To"] = "security@example.test"
    msg["Subject"] = f"RCE in the upload form {SUBJECT_MARK}{n}"
    msg["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    msg["Message-ID"] = f"<marked-{n}@reporter.example>"
    msg.set_content(f"Upload a .phtml file and it runs. {BODY_MARK}{n}\n")
    msg.add_attachment(b"proof of concept\n", maintype="text", subtype="plain",
                       filename=f"{FILE_MARK}{n}.txt")
    return msg.as_bytes(policy=SMTP)


def encodings(mark: str) -> list[bytes]:
    """The mark as text, in hex, and as base64 or quoted-printable would carry it at any
    alignment."""
    raw = mark.encode()
    # hex: how pg_dump writes a bytea column
    out = [raw, raw.lower(), quopri.encodestring(raw).strip(), mark.encode("utf-16-le"),
           raw.hex().encode()]
    for pad in range(3):
        encoded = base64.b64encode(b"\x00" * pad + raw)
        out.append(encoded[4 if pad else 0:-4])  # the part that does not depend on neighbours
    return [o for o in out if len(o) >= 6]


def assert_no_marks(blob: bytes, where: str) -> None:
    for mark in MARKS:
        for form in encodings(mark):
            assert form not in blob, f"{mark} found in {where} as {form!r}"


@pytest.fixture
def marked_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    for n in range(3):
        (tmp_path / f"report{n}.eml").write_bytes(report(n))
    return write_config(tmp_path)


def ingest_marked(tmp_path: Path, config: Path) -> None:
    files = [str(tmp_path / f"report{n}.eml") for n in range(3)]
    assert main(["--config", str(config), "ingest", *files]) == 0


def test_sqlite_file_holds_no_report_content_and_the_key_reads_it_back(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    ingest_marked(tmp_path, marked_config)
    assert main(["--config", str(marked_config), "cases", "list"]) == 0
    said = [r.message for r in caplog.records if "generated a storage key" in r.message]
    assert len(said) == 1  # once, at the first command
    key_file = tmp_path / "cli.db.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    files = sorted(tmp_path.glob("cli.db*"))
    assert any(f.name == "cli.db" for f in files)
    for f in files:
        if f != key_file:
            assert_no_marks(f.read_bytes(), f.name)
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert SUBJECT_MARK + "0" in shown["subject"]
    first = shown["messages"][0]
    assert SUBJECT_MARK + "0" in first["subject"]
    assert BODY_MARK + "0" in first["text"]
    assert first["attachments"][0]["filename"] == f"{FILE_MARK}0.txt"
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0002"]) == 0
    text = capsys.readouterr().out
    assert SUBJECT_MARK + "1" in text and BODY_MARK + "1" in text


def test_another_key_is_refused_by_every_command_and_nothing_is_lost(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_marked(tmp_path, marked_config)
    key_file = tmp_path / "cli.db.key"
    right = key_file.read_bytes()
    from mailbot.crypto.keys import parse_key

    right_id = parse_key(right.decode(), "test").id
    other = factories.storage_key(tmp_path, "other.key")
    config = marked_config.read_text() + f'[storage]\nkey_file = "{other}"\n'
    marked_config.write_text(config)
    capsys.readouterr()
    for argv in (["cases", "list"], ["cases", "show", "SEC-2026-0001"], ["run", "--once"],
                 ["cases", "ack", "SEC-2026-0001"]):
        assert main(["--config", str(marked_config), *argv]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1, err
        assert right_id in err and "Traceback" not in err
    marked_config.write_text(config.replace(str(other), str(key_file)))
    assert main(["--config", str(marked_config), "cases", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["status"] for r in rows] == ["new", "new", "new"]
    assert all(SUBJECT_MARK in r["subject"] for r in rows)


def test_a_database_without_its_key_is_refused(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_marked(tmp_path, marked_config)
    (tmp_path / "cli.db.key").rename(tmp_path / "elsewhere.key")
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "list"]) == 2
    err = capsys.readouterr().err
    assert "no storage key" in err and "Traceback" not in err
    assert not (tmp_path / "cli.db.key").exists()  # never replaced by a fresh one


def test_postgres_dump_holds_no_report_content(
    tmp_path: Path, marked_config: Path, pg_url: str, postgres_server: PostgresServer,
    capsys: pytest.CaptureFixture[str],
) -> None:
    key = factories.storage_key(tmp_path)
    marked_config.write_text(
        marked_config.read_text().replace(f"sqlite:///{tmp_path / 'cli.db'}", pg_url)
        + f'[storage]\nkey_file = "{key}"\n')
    ingest_marked(tmp_path, marked_config)
    database = pg_url.rsplit("/", 1)[1]
    command = [str(postgres_server.bin_dir / "pg_dump"), "-h", "127.0.0.1",
               "-p", str(postgres_server.port), "-U", "postgres", database]
    dump = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    assert b"raw_messages" in dump and len(dump) > 10_000
    assert_no_marks(dump, "pg_dump")
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0003", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert BODY_MARK + "2" in shown["messages"][0]["text"]


def test_a_database_written_in_clear_is_sealed_at_first_start(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An earlier version's database: the migration tags its values as clear, the first start
    with a key seals them and rekeys the dedupe hashes; the same report again is no new case."""
    import zlib

    from alembic import command
    from sqlalchemy import text

    from mailbot.mail.parse import dedupe_key
    from mailbot.store import Database, _alembic_config

    db = Database(f"sqlite:///{tmp_path / 'cli.db'}")
    with db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0004")
    raw = (tmp_path / "report0.eml").read_bytes()
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO cases (id, status, reporter, reporter_name, subject, flags, mentioned_tag,"
            " received_at, created_at, updated_at, cve, reminder_rank) VALUES ('SEC-2026-0001',"
            " 'new', 'rita0@reporter.example', '', :s, '[]', '', '2026-11-23 09:00:00',"
            " '2026-11-23 09:00:00', '2026-11-23 09:00:00', '[]', 0)"), {"s": f"{SUBJECT_MARK}0"})
        conn.execute(text("INSERT INTO case_counters VALUES ('SEC', 2026, 1)"))
        conn.execute(text("INSERT INTO raw_messages (id, size, codec, data) VALUES (1, :n, 'zlib',"
                          " :d)"), {"n": len(raw), "d": zlib.compress(raw)})
        conn.execute(text(
            "INSERT INTO messages (id, case_id, direction, kind, dedupe_key, message_id, from_addr,"
            " to_addrs, subject, received_at, folder, flags, details, raw_id) VALUES (1,"
            " 'SEC-2026-0001', 'in', 'report', :k, '<marked-0@reporter.example>',"
            " 'rita0@reporter.example', '[]', :s, '2026-11-23 09:00:00', 'INBOX', '[]', :d, 1)"),
            {"k": dedupe_key(raw), "s": f"{SUBJECT_MARK}0",
             "d": json.dumps({"attachments": [{"filename": f"{FILE_MARK}0.txt"}]})})
    db.dispose()

    ingest_marked(tmp_path, marked_config)  # migrates, seals, then ingests report 0 again
    out = capsys.readouterr().out
    assert "1 duplicate" in out and "2 opened" in out, out
    for f in tmp_path.glob("cli.db*"):
        if f.suffix != ".key":
            assert_no_marks(f.read_bytes(), f.name)
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["subject"] == f"{SUBJECT_MARK}0"
    assert shown["messages"][0]["attachments"][0]["filename"] == f"{FILE_MARK}0.txt"
    assert BODY_MARK + "0" in shown["messages"][0]["text"]


def test_a_tampered_value_is_that_rows_failure_naming_its_case_and_the_rest_goes_on(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import sqlite3

    ingest_marked(tmp_path, marked_config)
    with sqlite3.connect(tmp_path / "cli.db") as conn:
        (subject,) = conn.execute("SELECT subject FROM cases WHERE id = 'SEC-2026-0002'").fetchone()
        flipped = bytearray(subject)
        flipped[-1] ^= 0x01
        conn.execute("UPDATE cases SET subject = ? WHERE id = 'SEC-2026-0002'", (bytes(flipped),))
        (first,) = conn.execute("SELECT subject FROM cases WHERE id = 'SEC-2026-0001'").fetchone()
        # A ciphertext copied onto another row does not open there either.
        conn.execute("UPDATE cases SET subject = ? WHERE id = 'SEC-2026-0003'", (first,))
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "list", "--json"]) == 0
    rows = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert SUBJECT_MARK + "0" in rows["SEC-2026-0001"]["subject"]
    assert "integrity" in rows["SEC-2026-0002"]["subject"]
    assert "integrity" in rows["SEC-2026-0003"]["subject"]
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("SEC-2026-0002" in e for e in errors) and any("SEC-2026-0003" in e for e in errors)
    # Intake goes on: a new report still becomes a case.
    (tmp_path / "new.eml").write_bytes(report(7))
    assert main(["--config", str(marked_config), "ingest", str(tmp_path / "new.eml")]) == 0
    assert "1 opened" in capsys.readouterr().out


CORPUS = Path(__file__).resolve().parents[1] / "data" / "corpus"


@pytest.mark.slow
def test_no_log_line_carries_a_subject_a_body_or_an_attachment_name(tmp_path: Path) -> None:
    """The whole corpus, each message marked in its subject, and the marked reports, through
    ``mailbot --debug ingest``: the marks never reach stderr."""
    import os
    import re
    import sys

    files = []
    for n in range(3):
        (tmp_path / f"report{n}.eml").write_bytes(report(n))
        files.append(tmp_path / f"report{n}.eml")
    sources = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.parent != CORPUS
                     and "LICENSES" not in p.parts)
    for n, source in enumerate(sources):
        marked = re.sub(rb"(?im)^subject:[ \t]*", f"Subject: {SUBJECT_MARK} ".encode(),
                        source.read_bytes(), count=1)
        path = tmp_path / f"corpus{n}.eml"
        path.write_bytes(marked)
        files.append(path)
    config = write_config(tmp_path)
    env = {**os.environ, "TEST_IMAP_PASSWORD": "x",
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, "-m", "mailbot", "--debug", "--config", str(config),
                           "ingest", *map(str, files)], capture_output=True, env=env,
                          timeout=600, check=False)
    assert done.returncode in (0, 1), done.stderr[-2000:]
    assert b"opened" in done.stdout
    for mark in MARKS:
        for form in encodings(mark):
            assert form not in done.stderr, f"{mark} reached a log line"


def test_check_says_where_the_key_is_and_warns_when_encryption_is_off(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ingest_marked(tmp_path, marked_config)
    capsys.readouterr()
    main(["--config", str(marked_config), "check"])  # the servers are not there: exit 1
    out = capsys.readouterr().out
    assert "storage: ok" in out
    assert "storage: note: encrypted at rest (AES-256-GCM) with key" in out
    assert str(tmp_path / "cli.db.key") in out

    off = tmp_path / "off"
    off.mkdir()
    config = write_config(off, extra='[storage]\nencryption = "off"\n')
    main(["--config", str(config), "check"])
    assert 'encryption = "off": reports are stored in clear' in capsys.readouterr().out


def test_rotation_on_postgresql_leaves_every_value_under_the_new_key(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], marked_config: Path
) -> None:
    from sqlalchemy import select

    from mailbot.config import load_settings
    from mailbot.crypto.keys import read_key_file
    from mailbot.crypto.reseal import SEALED_TABLES
    from mailbot.crypto.rotation import rotate_storage
    from mailbot.sealing import key_id_of
    from mailbot.store import Database

    old, new = factories.storage_key(tmp_path, "a.key"), factories.storage_key(tmp_path, "b.key")
    marked_config.write_text(
        marked_config.read_text().replace(f"sqlite:///{tmp_path / 'cli.db'}", pg_url)
        + f'[storage]\nkey_file = "{old}"\n')
    ingest_marked(tmp_path, marked_config)
    report_ = rotate_storage(load_settings(marked_config), read_key_file(new), batch=2)
    assert report_.resealed > 0 and report_.failed == 0
    db = Database(pg_url)
    with db.engine.connect() as conn:
        kids = {key_id_of(bytes(v)) for spec in SEALED_TABLES
                for row in conn.execute(select(*(spec.table.c[c] for c in spec.columns)))
                for v in row if v is not None}
    db.dispose()
    assert kids == {read_key_file(new).id}
    marked_config.write_text(marked_config.read_text().replace(str(old), str(new)))
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0001", "--json"]) == 0
    assert BODY_MARK + "0" in json.loads(capsys.readouterr().out)["messages"][0]["text"]


CREDIT_MARK = "Zqxcreditmark7"
ERROR_MARK = "Zqxerrormark7"


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_credit_events_and_failures_left_clear_before_0007_are_sealed_at_first_start(
    tmp_path: Path, marked_config: Path, capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest, backend: str,
) -> None:
    """A database already sealed by a version before 0007 (canary, sealed subjects) still holds
    the credit name, the events' details and sources and the failure texts in clear: 0007 tags
    them, and the first start with the key seals them."""
    from alembic import command
    from sqlalchemy import text

    from mailbot.crypto.aead import AesGcmSealer
    from mailbot.crypto.keys import read_key_file
    from mailbot.crypto.provision import write_canary
    from mailbot.store import Database, _alembic_config

    key = factories.storage_key(tmp_path)
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    if backend == "postgresql":
        url = request.getfixturevalue("pg_url")
    marked_config.write_text(
        marked_config.read_text().replace(f"sqlite:///{tmp_path / 'cli.db'}", url)
        + f'[storage]\nkey_file = "{key}"\n')
    sealer = AesGcmSealer([read_key_file(key)])
    db = Database(url, sealer)
    with db.engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0006")
    credit = f"Rita {CREDIT_MARK}"
    with db.engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO cases (id, status, reporter, reporter_name, subject, flags, mentioned_tag,"
            " received_at, created_at, updated_at, cve, reminder_rank, credit, credit_consent)"
            " VALUES ('SEC-2026-0001', 'new', 'rita0@reporter.example', '', :s, '[]', '',"
            " '2026-11-23 09:00:00', '2026-11-23 09:00:00', '2026-11-23 09:00:00', '[]', 0, :c,"
            " 'named')"), {"s": sealer.seal(b"A sealed subject", "cases.subject:SEC-2026-0001"),
                           "c": credit})
        conn.execute(text("INSERT INTO case_counters VALUES ('SEC', 2026, 1)"))
        conn.execute(text(
            "INSERT INTO events (case_id, at, actor, action, detail, source) VALUES ("
            "'SEC-2026-0001', '2026-11-23 09:00:00', 'cli:root', 'credit', :d, :c)"),
            {"d": json.dumps({"consent": "named", "name": credit}),
             "c": f"cli:cases credit SEC-2026-0001 {credit}"})
        conn.execute(text(
            "INSERT INTO inbound_failures (folder, uidvalidity, uid, attempts, last_error,"
            " quarantined, updated_at) VALUES ('INBOX', 1, 7, 3, :e, :q,"
            " '2026-11-23 09:00:00')"), {"e": f"ValueError: cannot parse {ERROR_MARK}", "q": True})
    write_canary(db)
    db.dispose()

    ingest_marked(tmp_path, marked_config)  # migrates to 0007, seals, then ingests
    if backend == "sqlite":
        blobs = [(f.name, f.read_bytes()) for f in tmp_path.glob("cli.db*")]
    else:
        server = request.getfixturevalue("postgres_server")
        dump = [str(server.bin_dir / "pg_dump"), "-h", "127.0.0.1", "-p", str(server.port),
                "-U", "postgres", url.rsplit("/", 1)[1]]
        blobs = [("pg_dump", subprocess.run(dump, capture_output=True, check=True,
                                            timeout=60).stdout)]
    for where, blob in blobs:
        for mark in (CREDIT_MARK, ERROR_MARK):
            for form in encodings(mark):
                assert form not in blob, f"{mark} found in {where} as {form!r}"
    capsys.readouterr()
    assert main(["--config", str(marked_config), "cases", "show", "SEC-2026-0001", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["credit"] == credit and shown["subject"] == "A sealed subject"
    assert shown["events"][0]["detail"] == {"consent": "named", "name": credit}
    assert shown["events"][0]["source"] == f"cli:cases credit SEC-2026-0001 {credit}"
    assert main(["--config", str(marked_config), "quarantine", "list", "--json"]) == 0
    [entry] = json.loads(capsys.readouterr().out)
    assert ERROR_MARK in entry["error"]
