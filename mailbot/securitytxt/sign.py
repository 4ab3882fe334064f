"""An OpenPGP cleartext signature (RFC 9116 section 2.3) with the team key, made by GnuPG.

GnuPG runs through python-gnupg in the home that ``[pgp] home`` names, without a pinentry: the
passphrase (``[pgp] passphrase_env``) is handed over on a pipe (loopback mode).
"""

from __future__ import annotations

from mailbot.config_sections import PgpSettings
from mailbot.errors import ConfigError, MailbotError

__all__ = ["SigningError", "clearsign"]


class SigningError(MailbotError):
    """GnuPG could not sign (a missing key, a wrong passphrase, no gpg program)."""


def clearsign(text: str, pgp: PgpSettings) -> str:
    import gnupg

    try:
        gpg = gnupg.GPG(gnupghome=pgp.home)
    except (OSError, ValueError) as exc:
        raise ConfigError("pgp.home", f"a GnuPG home that gpg can use ({exc})", pgp.home) from None
    gpg.encoding = "utf-8"
    if not any(k["fingerprint"].endswith(pgp.key) for k in gpg.list_keys(secret=True)):
        raise ConfigError("pgp.key", f"the fingerprint of a secret key in {pgp.home}", pgp.key)
    signed = gpg.sign(text, keyid=pgp.key, clearsign=True, passphrase=pgp.passphrase,
                      extra_args=["--pinentry-mode", "loopback", "--digest-algo", "SHA512"])
    # A failed signature still prints the text under a "SIGNED MESSAGE" header: trust only
    # gpg's own word that a signature was made.
    if not signed.fingerprint or "-----BEGIN PGP SIGNATURE-----" not in str(signed):
        raise SigningError(f"gpg could not sign with {pgp.key}: {_reason(signed.stderr)}")
    return str(signed)


def _reason(stderr: str) -> str:
    """gpg's own words for the failure ("Bad passphrase", "No secret key"), else its last line."""
    lines = [line for line in stderr.splitlines() if line.startswith("gpg: ")]
    for line in lines:
        if "failed: " in line:
            return line.rsplit("failed: ", 1)[1]
    return lines[-1].removeprefix("gpg: ") if lines else "no signature made"
