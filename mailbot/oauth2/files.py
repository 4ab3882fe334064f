"""The refresh-token file: the one place a secret of ours is ever written.

``write_secret`` writes a new file beside the old one (mode 0600 from its creation), flushes it
to disk and renames it over the old one: a crash at any moment leaves the old token or the new one,
never a torn file. Leftovers of a write that was killed are removed by the next write.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from mailbot.errors import TokenUnavailable

KEY = "oauth2.refresh_token_file"


def read_secret(path: str | Path) -> str:
    p = Path(path)
    try:
        value = p.read_text("utf-8").strip()
    except FileNotFoundError:
        raise TokenUnavailable(
            f"no refresh token in {str(p)!r}; run `mailbot auth login` to get one", key=KEY
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not text"
        raise TokenUnavailable(f"cannot read the refresh token in {str(p)!r}: {reason}",
                               key=KEY) from None
    if not value:
        raise TokenUnavailable(
            f"the refresh-token file {str(p)!r} is empty; run `mailbot auth login`", key=KEY
        )
    return value


def write_secret(path: str | Path, value: str) -> None:
    """Replace the file's content with ``value`` atomically; the file is 0600 throughout."""
    p = Path(path)
    directory = p.parent
    for stale in directory.glob(f".{p.name}.*.tmp"):
        with contextlib.suppress(OSError):
            stale.unlink()
    tmp = directory / f".{p.name}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # also when a leftover of this pid existed with other bits
        data = (value + "\n").encode("utf-8")
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.close(fd)
    os.replace(tmp, p)
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)
