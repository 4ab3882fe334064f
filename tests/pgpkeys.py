"""GnuPG homes and keys made by the test suite itself (never shipped keys).

Each home is short and under /tmp (gpg-agent's socket path must fit in about 100 bytes), keys
have no passphrase unless asked, and ``close`` stops the home's agents before removing it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Home:
    path: Path
    keys: dict[str, str] = field(default_factory=dict)  # address -> fingerprint

    def gpg(self, *args: str, data: bytes | None = None, passphrase: str = "") -> bytes:
        cmd = ["gpg", "--homedir", str(self.path), "--batch", "--yes", "--no-tty",
               "--pinentry-mode", "loopback", "--passphrase", passphrase, "--trust-model",
               "always", *args]
        return subprocess.run(cmd, input=data, capture_output=True, check=True,
                              timeout=120).stdout

    def status(self, *args: str, data: bytes) -> tuple[bytes, str]:
        """Output and status lines of a call that may fail (a decrypt, a verify)."""
        cmd = ["gpg", "--homedir", str(self.path), "--batch", "--no-tty", "--status-fd", "2",
               "--pinentry-mode", "loopback", "--passphrase", "", "--trust-model", "always",
               *args]
        done = subprocess.run(cmd, input=data, capture_output=True, timeout=120)
        return done.stdout, done.stderr.decode(errors="replace")

    def new_key(self, address: str, *, algo: str = "ed25519", passphrase: str = "",
                expire: str = "2y") -> str:
        uid = f"Test <{address}>"
        if algo == "rsa3072":
            self.gpg("--quick-gen-key", uid, "rsa3072", "sign,encr", expire,
                     passphrase=passphrase)
        else:
            self.gpg("--quick-gen-key", uid, "ed25519", "sign", expire, passphrase=passphrase)
        fpr = self.fingerprint(uid)
        if algo != "rsa3072":
            self.gpg("--quick-add-key", fpr, "cv25519", "encr", expire, passphrase=passphrase)
        self.keys[address] = fpr
        return fpr

    def fingerprint(self, who: str) -> str:
        out = self.gpg("--with-colons", "--list-secret-keys", who).decode()
        return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))

    def public(self, who: str, *, armor: bool = True) -> bytes:
        return self.gpg(*(["--armor"] if armor else []), "--export", who)

    def secret(self, who: str) -> bytes:
        return self.gpg("--armor", "--export-secret-keys", who)

    def import_(self, data: bytes) -> None:
        self.gpg("--import", data=data)

    def encrypt(self, data: bytes, *, to: str, sign_as: str | None = None) -> bytes:
        args = ["--armor", "--encrypt", "-r", to]
        if sign_as:
            args += ["--sign", "-u", sign_as]
        return self.gpg(*args, data=data)

    def sign_detached(self, data: bytes, *, signer: str) -> bytes:
        return self.gpg("--armor", "--detach-sign", "-u", signer, data=data)

    def clearsign(self, data: bytes, *, signer: str) -> bytes:
        return self.gpg("--clearsign", "-u", signer, data=data)

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.path), "--kill", "all"],
                       capture_output=True, timeout=60)
        shutil.rmtree(self.path, ignore_errors=True)


def new_home() -> Home:
    return Home(Path(tempfile.mkdtemp(prefix="g", dir="/tmp")))
