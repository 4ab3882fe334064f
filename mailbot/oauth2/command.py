"""``provider = "command"``: a helper program prints an access token on its first line.

The way mutt, aerc and isync delegate OAuth2 (``oama``, ``mutt_oauth2.py``, a vault CLI...). The
helper keeps its own cache; its lifetime is unknown here, so the token is asked for again after
``UNKNOWN_LIFETIME`` or as soon as a server refuses it.
"""

from __future__ import annotations

import subprocess

from mailbot.errors import TokenUnavailable
from mailbot.oauth2.problems import first_line
from mailbot.oauth2.settings import OAuth2Settings
from mailbot.oauth2.tokens import AccessToken

KEY = "oauth2.token_command"
TIMEOUT_SECONDS = 60


class CommandFlow:
    def __init__(self, settings: OAuth2Settings) -> None:
        self.command = list(settings.token_command)
        self.flow = settings.flow

    def fetch(self) -> AccessToken:
        program = self.command[0]
        try:
            done = subprocess.run(self.command, stdin=subprocess.DEVNULL, capture_output=True,
                                  timeout=TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            raise TokenUnavailable(f"{self.flow}: {program} did not finish within "
                                   f"{TIMEOUT_SECONDS} s; check {KEY}", key=KEY) from None
        except OSError as exc:
            raise TokenUnavailable(f"{self.flow}: cannot run {program} ({exc.strerror}); "
                                   f"check {KEY}", key=KEY) from None
        lines = done.stdout.decode("utf-8", "replace").strip().splitlines()
        token = lines[0].strip() if lines else ""
        if done.returncode != 0:
            said = first_line(done.stderr.decode("utf-8", "replace"))
            if token and token in said:
                said = said.replace(token, "***")
            raise TokenUnavailable(
                f"{self.flow}: {program} exited with status {done.returncode}"
                + (f" ({said})" if said else "") + f"; check {KEY}",
                key=KEY, code=str(done.returncode))
        if not token or any(c.isspace() for c in token):
            raise TokenUnavailable(f"{self.flow}: {program} printed no token on its first line; "
                                   f"check {KEY}", key=KEY)
        return AccessToken(token, None)
