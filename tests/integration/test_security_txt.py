"""``mailbot security-txt``: RFC 9116 output checked by a security.txt validator (sectxt), an
OpenPGP cleartext signature made with a key the test generates and verified by gpg, and the
expiry warning of ``mailbot check``."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sectxt import Parser

from mailbot.checks import run_checks
from mailbot.cli import main
from mailbot.config import Settings, settings_from_mapping
from mailbot.config_sections import PgpSettings
from mailbot.errors import ConfigError
from mailbot.securitytxt.build import build_security_txt
from mailbot.securitytxt.expiry import expiry_problem, read_expires
from mailbot.securitytxt.sign import SigningError, clearsign

NOW = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
PASSPHRASE: dict[str, str] = {}
BASE = {
    "mailbox": {"host": "127.0.0.1", "port": 1, "security": "none",
                "username": "security@example.test", "password": "unused"},
    "smtp": {"host": "127.0.0.1", "port": 1, "security": "none",
             "from": "Example Security <security@example.test>"},
    "securitytxt": {
        "policy": "https://example.test/security-policy",
        "acknowledgments": "https://example.test/hall-of-fame",
        "preferred_languages": ["en", "nl"],
        "canonical": "https://example.test/.well-known/security.txt",
        "encryption": "https://example.test/pgp-key.txt",
    },
}


def settings(**sections: dict[str, object]) -> Settings:
    return settings_from_mapping({**BASE, **sections}, environ={})


def fields(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ": " in line and not line.startswith(("#", "-", "Hash:")):
            name, value = line.split(": ", 1)
            out.setdefault(name, []).append(value)
    return out


def test_security_txt_passes_the_validator_and_carries_the_config() -> None:
    text = build_security_txt(settings(), NOW)
    parser = Parser(text.encode())
    assert parser.is_valid(), parser.errors
    assert parser.errors == []
    got = fields(text)
    assert got["Contact"] == ["mailto:security@example.test"]
    assert got["Expires"] == ["2027-05-31T10:00:00Z"]  # 180 days, the default
    assert got["Policy"] == ["https://example.test/security-policy"]
    assert got["Acknowledgments"] == ["https://example.test/hall-of-fame"]
    assert got["Preferred-Languages"] == ["en, nl"]
    assert got["Canonical"] == ["https://example.test/.well-known/security.txt"]
    assert got["Encryption"] == ["https://example.test/pgp-key.txt"]
    assert parser.preferred_languages == ["en", "nl"]


def test_expires_follows_expires_days_and_a_year_is_the_most() -> None:
    short = settings(securitytxt={"expires_days": 30})
    assert fields(build_security_txt(short, NOW))["Expires"] == ["2027-01-01T10:00:00Z"]
    with pytest.raises(ConfigError) as exc:
        settings(securitytxt={"expires_days": 400})
    assert "securitytxt.expires_days" in str(exc.value)
    with pytest.raises(ConfigError) as exc:
        settings(securitytxt={"policy": "http://example.test/plain"})
    assert "securitytxt.policy" in str(exc.value)


@pytest.fixture(params=["", "s3cret passphrase"], ids=["no-passphrase", "passphrase"])
def gnupg_home(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """A throwaway GnuPG home (short path under /tmp, for the agent's socket) with one key,
    without a passphrase and with one (``PASSPHRASE[home]`` says which)."""
    if shutil.which("gpg") is None:
        pytest.skip("no gpg (apt-get install gnupg)")
    home = tempfile.mkdtemp(prefix="g", dir="/tmp")
    PASSPHRASE[home] = request.param
    gpg = ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase",
           request.param]
    try:
        subprocess.run([*gpg, "--quick-gen-key", "Example Security <security@example.test>",
                        "ed25519", "sign", "1y"], check=True, capture_output=True)
        listing = subprocess.run([*gpg, "--with-colons", "--list-secret-keys"], check=True,
                                 capture_output=True, text=True).stdout
        fingerprint = next(line.split(":")[9] for line in listing.splitlines()
                           if line.startswith("fpr:"))
        yield home, fingerprint
    finally:
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "all"], check=False)
        shutil.rmtree(home, ignore_errors=True)


def test_signed_security_txt_verifies_with_the_team_key(gnupg_home: tuple[str, str]) -> None:
    home, fingerprint = gnupg_home
    text = build_security_txt(settings(), NOW)
    signed = clearsign(text, PgpSettings(home=home, key=fingerprint, passphrase=PASSPHRASE[home]))
    assert signed.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    assert "-----BEGIN PGP SIGNATURE-----" in signed
    parser = Parser(signed.encode())
    assert parser.is_valid(), parser.errors
    verify = subprocess.run(["gpg", "--homedir", home, "--batch", "--status-fd", "1",
                             "--verify"], input=signed.encode(), capture_output=True, check=False)
    assert verify.returncode == 0, verify.stderr
    assert f"VALIDSIG {fingerprint}".encode() in verify.stdout
    if PASSPHRASE[home]:  # the agent caches it: a fresh agent must get the right one
        subprocess.run(["gpgconf", "--homedir", home, "--kill", "gpg-agent"], check=True)
        with pytest.raises(SigningError, match="Bad passphrase"):
            clearsign(text, PgpSettings(home=home, key=fingerprint, passphrase="wrong"))
    # Tampering breaks it.
    forged = signed.replace("mailto:security@example.test", "mailto:attacker@evil.test")
    bad = subprocess.run(["gpg", "--homedir", home, "--batch", "--verify"],
                         input=forged.encode(), capture_output=True, check=False)
    assert bad.returncode != 0


def test_cli_signs_when_pgp_is_configured(gnupg_home: tuple[str, str], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    home, fingerprint = gnupg_home
    monkeypatch.setenv("TEST_PGP_PASS", PASSPHRASE[home])
    config = tmp_path / "mailbot.toml"
    config.write_text(
        '[mailbox]\nhost = "127.0.0.1"\nsecurity = "none"\nusername = "s@example.test"\n'
        'password = "unused"\n[smtp]\nhost = "127.0.0.1"\nsecurity = "none"\n'
        'from = "security@example.test"\n'
        f'[pgp]\nhome = "{home}"\nkey = "{fingerprint}"\npassphrase_env = "TEST_PGP_PASS"\n'
        '[securitytxt]\nexpires_days = 90\n')
    out = tmp_path / "security.txt"
    assert main(["--config", str(config), "security-txt", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("-----BEGIN PGP SIGNED MESSAGE-----")
    assert Parser(text.encode()).is_valid()
    # A key that is not in the home: one clear line, exit 2.
    config.write_text(config.read_text().replace(fingerprint, "0" * 40))
    capsys.readouterr()
    assert main(["--config", str(config), "security-txt"]) == 2
    err = capsys.readouterr().err
    assert "pgp.key" in err and "Traceback" not in err


def test_check_warns_thirty_days_before_expiry_and_fails_after(tmp_path: Path) -> None:
    published = tmp_path / "security.txt"
    now = datetime.now(UTC)
    published.write_text(build_security_txt(settings(securitytxt={"expires_days": 29}), now))
    assert read_expires(published.read_text()) is not None
    level, message = expiry_problem(str(published), now) or ("", "")
    assert level == "warning" and "expires on" in message
    published.write_text(build_security_txt(settings(securitytxt={"expires_days": 31}), now))
    assert expiry_problem(str(published), now) is None
    assert (expiry_problem(str(published), now + timedelta(days=40)) or ("",))[0] == "problem"

    cfg = settings(securitytxt={"path": str(published), "expires_days": 31})
    cfg = dataclasses.replace(cfg, database=dataclasses.replace(
        cfg.database, url=f"sqlite:///{tmp_path / 'm.db'}"))
    published.write_text(build_security_txt(settings(securitytxt={"expires_days": 10}), now))
    results, notes = run_checks(cfg)
    assert any(name == "security.txt" and "expires on" in note for name, note in notes)
    published.unlink()
    results, notes = run_checks(cfg)
    assert ("security.txt", f"cannot read {published}: No such file or directory") in results
