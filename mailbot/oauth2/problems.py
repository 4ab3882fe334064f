"""Provider errors as one line that names the ``[oauth2]`` key to look at and the error code."""

from __future__ import annotations

from collections.abc import Mapping

from mailbot.errors import TokenUnavailable

# Microsoft Entra ID error numbers (AADSTSnnnn) that point at one key.
_MICROSOFT_CODES = {
    7000215: "secret",  # invalid client secret
    7000222: "secret",  # client secret expired
    700016: "oauth2.client_id",  # application not found in the tenant
    90002: "oauth2.tenant_id",  # tenant not found
    900023: "oauth2.tenant_id",  # tenant id malformed
    65001: "oauth2.client_id",  # admin consent not granted
    700027: "oauth2.certificate_file",  # certificate not registered with the app
    70011: "oauth2.scope",
    1002012: "oauth2.scope",
}
_STANDARD_CODES = {
    "invalid_client": "secret",
    "unauthorized_client": "client",
    "invalid_grant": "grant",
    "invalid_scope": "oauth2.scope",
    "access_denied": "client",
}


# OAuth2 errors that mean "not now" rather than "not you" (RFC 6749 section 5.2 and 4.1.2.1).
_UNAVAILABLE = frozenset({"temporarily_unavailable", "server_error"})


def refused(flow: str, error: str, description: str | None, *, secret_key: str,
            grant_key: str, client_key: str = "oauth2.client_id",
            numbers: list[int] | None = None) -> TokenUnavailable:
    """The provider answered with an OAuth2 error: which key is most likely wrong."""
    key = ""
    for number in numbers or ():
        key = _MICROSOFT_CODES.get(number, "")
        if key:
            break
    key = key or _STANDARD_CODES.get(error, "client")
    key = {"secret": secret_key, "grant": grant_key, "client": client_key}.get(key, key)
    code = error
    if numbers:
        code = f"{error}, AADSTS{numbers[0]}"
    detail = first_line(description)
    if error in _UNAVAILABLE:  # weather: no code, so the caller retries as for a network error
        text = f"{flow}: the provider is unavailable ({code})" + (f": {detail}" if detail else "")
        return TokenUnavailable(f"{text}; it is asked again later", key=key)
    text = f"{flow}: the provider refused the token request ({code})"
    if detail:
        text += f": {detail}"
    return TokenUnavailable(f"{text}; check {key}", key=key, code=code)


def unreachable(flow: str, what: str, exc: BaseException, *, key: str) -> TokenUnavailable:
    """The endpoint could not be reached or did not answer in OAuth2's terms."""
    reason = first_line(str(exc)) or type(exc).__name__
    return TokenUnavailable(f"{flow}: {what} failed: {reason}; check {key}", key=key)


def first_line(text: str | None, limit: int = 300) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0].strip()[:limit] if lines else ""


def error_fields(body: object) -> tuple[str, str | None]:
    """``error`` and ``error_description`` from a decoded JSON error response, if any."""
    if isinstance(body, Mapping):
        description = body.get("error_description")
        return str(body.get("error", "")), str(description) if description else None
    return "", None
