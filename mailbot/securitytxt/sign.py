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
    if not signed.data:
        raise SigningError(f"gpg could not sign with {pgp.key}: {signed.status or 'no output'}")
    return str(signed)
