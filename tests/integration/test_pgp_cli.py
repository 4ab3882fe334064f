"""``keys import``, ``keys list``, ``cases retry-decrypt`` and the team key in ``check``, with
keys the test suite makes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.cli import main
from mailbot.pgp.check import check_team_key
from mailbot.pgp.settings import PgpSettings
from tests.integration.test_cli import write_config
from tests.pgpkeys import Home, new_home
from tests.pgpmail import Keys, Person, inner_text, pgp_mime

ROB = "rob@reporter.example"


def config_with_pgp(tmp_path: Path, home: Home, keys: Keys, extra: str = "") -> Path:
    return write_config(tmp_path, extra=f'[pgp]\nhome = "{home.path}"\nkey = "{keys.team_fpr}"\n'
                                        f"{extra}")


def test_keys_import_records_the_key_for_its_address_and_list_shows_it(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_with_pgp(tmp_path, team_home, pgp_keys)
    key_file = tmp_path / "rob.asc"
    key_file.write_bytes(pgp_keys.reporters[ROB][1])
    assert main(["--config", str(config), "keys", "import", str(key_file)]) == 0
    assert f"{ROB}: {pgp_keys.reporters[ROB][2]}" in capsys.readouterr().out
    assert main(["--config", str(config), "keys", "list", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["address"], row["fingerprint"], row["source"], row["usable"]) == (
        ROB, pgp_keys.reporters[ROB][2], "keys import", True)


@pytest.mark.parametrize("content, address, expected", [
    (b"just some text\n", None, "no OpenPGP public key"),
    (None, "someone@else.example", "no key in it carries the address someone@else.example"),
])
def test_keys_import_refuses_what_is_not_a_key_for_that_address_in_one_line(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, capsys: pytest.CaptureFixture[str],
    content: bytes | None, address: str | None, expected: str,
) -> None:
    config = config_with_pgp(tmp_path, team_home, pgp_keys)
    key_file = tmp_path / "key.asc"
    key_file.write_bytes(content if content is not None else pgp_keys.reporters[ROB][1])
    argv = ["--config", str(config), "keys", "import", str(key_file)]
    assert main([*argv, *(["--address", address] if address else [])]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err and "Traceback" not in err


def test_retry_decrypt_reads_an_undecryptable_case_once_the_key_is_there(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, people: dict[str, Person],
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_with_pgp(tmp_path, team_home, pgp_keys)
    other_secret, other_public, other_fpr = pgp_keys.reporters["other@elsewhere.example"]
    rob = people[ROB]
    rob.home.import_(other_public)
    armored = rob.home.encrypt(inner_text("the real text\n", subject="Real subject"),
                               to=other_fpr)
    report = tmp_path / "report.eml"
    report.write_bytes(pgp_mime([("From", ROB), ("To", "security@example.test"),
                                 ("Subject", "..."), ("Message-ID", "<r1@reporter.example>")],
                                armored))
    assert main(["--config", str(config), "ingest", str(report)]) == 0
    capsys.readouterr()
    assert main(["--config", str(config), "cases", "list", "--json"]) == 0
    [case] = json.loads(capsys.readouterr().out)
    assert "undecryptable" in case["flags"] and case["subject"] == "..."

    assert main(["--config", str(config), "cases", "retry-decrypt"]) == 1  # key still missing
    assert "still undecryptable: not encrypted to the team key" in capsys.readouterr().out
    team_home.import_(other_secret)
    assert main(["--config", str(config), "cases", "retry-decrypt", case["id"]]) == 0
    assert "decrypted" in capsys.readouterr().out
    assert main(["--config", str(config), "cases", "retry-decrypt"]) == 0
    assert "no undecryptable cases" in capsys.readouterr().out
    assert main(["--config", str(config), "cases", "show", case["id"], "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert "undecryptable" not in shown["flags"] and shown["subject"] == "Real subject"
    assert [m["kind"] for m in shown["messages"]].count("receipt") == 1
    assert [e["action"] for e in shown["events"]].count("decrypted") == 1


def test_check_names_the_team_key_line(
    tmp_path: Path, team_home: Home, pgp_keys: Keys, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_IMAP_PASSWORD", "x")
    config = config_with_pgp(tmp_path, team_home, pgp_keys)
    main(["--config", str(config), "check"])
    assert "pgp: ok" in capsys.readouterr().out.splitlines()


def test_check_team_key_finds_each_problem(pgp_keys: Keys) -> None:
    now = datetime.now(UTC)
    homes: list[Home] = []
    try:
        empty = new_home()
        homes.append(empty)
        problem, _ = check_team_key(PgpSettings(home=str(empty.path), key=pgp_keys.team_fpr), now)
        assert problem is not None and "no key" in problem

        public_only = new_home()
        homes.append(public_only)
        public_only.import_(pgp_keys.team_public)
        problem, _ = check_team_key(
            PgpSettings(home=str(public_only.path), key=pgp_keys.team_fpr), now)
        assert problem is not None and "no secret part" in problem

        guarded = new_home()
        homes.append(guarded)
        fpr = guarded.new_key("sec@example.test", passphrase="right one", expire="10d")
        settings = PgpSettings(home=str(guarded.path), key=fpr, passphrase="wrong")
        problem, _ = check_team_key(settings, now)
        assert problem is not None and "test message" in problem
        settings = PgpSettings(home=str(guarded.path), key=fpr, passphrase="right one")
        problem, note = check_team_key(settings, now)
        assert problem is None and note is not None and "expires on" in note
        problem, _ = check_team_key(settings, now + timedelta(days=11))
        assert problem is not None and "expired" in problem
    finally:
        for home in homes:
            home.close()


