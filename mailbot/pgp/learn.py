"""Reporters' public keys, from what their mail carries or from the operator.

A key is recorded for an address only when it is one OpenPGP key, small enough, and has a user
id with exactly that address; only that user id is imported. Anything else is recorded on the
message with the reason and ignored, never trusted.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from datetime import datetime

from mailbot.pgp.directory import Directory, Entry
from mailbot.pgp.gpg import Gpg, PgpError

log = logging.getLogger("mailbot.pgp")

_AUTOCRYPT_ATTR = re.compile(r"\s*([A-Za-z_-]+)\s*=\s*(.*)")


def learn(gpg: Gpg, directory: Directory, data: bytes, *, address: str, source: str,
          now: datetime, max_bytes: int) -> dict[str, str]:
    """Record ``data`` as ``address``'s key; what happened, for the message's record."""
    outcome = {"source": source}
    if not data:
        return {**outcome, "result": "ignored: empty, or larger than pgp.max_key_bytes"}
    if len(data) > max_bytes:
        return {**outcome, "result": f"ignored: {len(data)} bytes, over pgp.max_key_bytes"}
    try:
        keys = gpg.scan(data)
    except PgpError as exc:
        return {**outcome, "result": f"ignored: {exc}"}
    if not keys:
        return {**outcome, "result": "ignored: not an OpenPGP public key"}
    if len(keys) > 1:
        return {**outcome, "result": f"ignored: {len(keys)} keys in one attachment"}
    key = keys[0]
    outcome["fingerprint"] = key.fingerprint
    if key.secret:
        return {**outcome, "result": "ignored: a secret key"}
    if address not in key.addresses:
        return {**outcome, "result": "ignored: the key is for another address"}
    try:
        imported = gpg.import_for(data, address)
    except PgpError as exc:
        return {**outcome, "result": f"ignored: {exc}"}
    if key.fingerprint not in imported:
        return {**outcome, "result": "ignored: gpg did not import it"}
    info = gpg.key(key.fingerprint)
    if info is None or info.revoked or info.expired:
        return {**outcome, "result": "ignored: revoked or expired"}
    entry = Entry(address, key.fingerprint, source, now.isoformat())
    if not directory.put(entry):
        return {**outcome, "result": "ignored: the operator imported another key for "
                                     "this address"}
    log.info("recorded a PGP key for a reporter (%s, from %s)", key.fingerprint, source)
    return {**outcome, "result": "recorded"}


def autocrypt_key(value: str, sender: str) -> bytes | None:
    """The key data of an ``Autocrypt`` header field whose ``addr`` is the sender; else None."""
    attrs: dict[str, str] = {}
    for piece in value.split(";"):
        match = _AUTOCRYPT_ATTR.match(piece)
        if match:
            attrs[match.group(1).lower()] = match.group(2).strip()
    if attrs.get("addr", "").lower() != sender or "keydata" not in attrs:
        return None
    if any(k not in ("addr", "keydata", "prefer-encrypt") and not k.startswith("_")
           for k in attrs):
        return None  # an unknown critical attribute: the header is to be ignored
    try:
        return base64.b64decode("".join(attrs["keydata"].split()), validate=True)
    except (binascii.Error, ValueError):
        return b"not base64"
