"""The exception tree of mailbot.

    MailbotError
    ├── ConfigError            a config key is missing or has a bad value (names the key)
    ├── UsageError             bad CLI input, an unknown case id, a transition that cannot apply
    ├── StorageKeyError        the storage key is missing, malformed, or does not open the database
    ├── InstanceLockedError    another mailbot already serves this database or mailbox
    ├── TemporaryError         try again later; nothing is lost
    │   ├── MailboxUnavailable     IMAP connection, login or command failed
    │   │   └── MailboxLoginRefused    the IMAP server (or the token provider) refused our
    │   │                              credentials                               (+ LoginRefused)
    │   ├── SmtpTemporaryError     SMTP 4xx, timeout, connection refused
    │   │   └── SmtpLoginRefused       the same for SMTP                         (+ LoginRefused)
    │   ├── DatabaseUnavailable    the database could not be reached
    │   └── TokenUnavailable       no OAuth2 access token (names the [oauth2] key to look at)
    ├── PermanentError         retrying will not help
    │   ├── SmtpPermanentError     SMTP 5xx
    │   └── IntegrityFailure       a stored value does not open (mailbot.sealing)
    └── LoginRefused           mixin: a server refused our credentials; a person must fix the
                               config key it names (retried slowly, so as not to lock the account)

Library errors are translated at the edge that calls the library (``raise X(...) from exc``), so the
core only ever sees these classes and can tell temporary failures from permanent ones.
"""

from __future__ import annotations


class MailbotError(Exception):
    """Base class of every error mailbot raises on purpose."""


class ConfigError(MailbotError):
    """A configuration key is missing or has a value of the wrong shape."""

    def __init__(self, key: str, expected: str, got: object = None) -> None:
        self.key = key
        self.expected = expected
        self.got = got
        detail = f"{key}: expected {expected}"
        if got is not None:
            detail += f", got {got!r}"
        super().__init__(detail)


class UsageError(MailbotError):
    """The operator asked for something that cannot be done (bad argument, unknown case id)."""


class StorageKeyError(MailbotError):
    """The storage key is missing, unreadable, malformed, or not the one the database needs."""


class InstanceLockedError(MailbotError):
    """Another mailbot instance holds the lock this one needs."""


class TemporaryError(MailbotError):
    """A failure that may go away on its own; the work is retried later."""


class MailboxUnavailable(TemporaryError):
    """The IMAP server could not be reached, refused the login or failed a command."""


class SmtpTemporaryError(TemporaryError):
    """The SMTP server answered 4xx, timed out or could not be reached."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class LoginRefused(MailbotError):
    """A server refused mailbot's credentials: not weather, a person has to fix ``key``.

    Also a TemporaryError through its concrete classes (nothing is lost, the work waits), but the
    daemon retries it slowly and says so at ERROR level once, since every try counts towards the
    account lockout many providers apply after repeated failed logins.
    """

    def __init__(self, message: str, *, service: str, key: str) -> None:
        super().__init__(message)
        self.service = service  # "imap" | "smtp"
        self.key = key  # the config key(s) to fix, e.g. "mailbox.password_env"


class MailboxLoginRefused(MailboxUnavailable, LoginRefused):
    """The IMAP server answered LOGIN (or AUTHENTICATE) with NO, or no token could be had."""

    def __init__(self, message: str, *, key: str) -> None:
        LoginRefused.__init__(self, message, service="imap", key=key)


class SmtpLoginRefused(SmtpTemporaryError, LoginRefused):
    """The SMTP server refused AUTH (535 and the like), or no token could be had."""

    def __init__(self, message: str, *, key: str, code: int | None = None) -> None:
        LoginRefused.__init__(self, message, service="smtp", key=key)
        self.code = code


class DatabaseUnavailable(TemporaryError):
    """The database could not be reached."""


class PermanentError(MailbotError):
    """A failure that retrying will not fix."""


class SmtpPermanentError(PermanentError):
    """The SMTP server rejected a message or recipient with 5xx."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class TokenUnavailable(TemporaryError):
    """No OAuth2 access token could be obtained from the provider (or the token command).

    ``key`` is the ``[oauth2]`` key the operator should look at, ``code`` the provider's error
    code (``invalid_client``, ``AADSTS7000215``) when it refused; empty when it could not be
    reached or said it is unavailable. The message never holds a secret. Temporary: a provider
    that answers again later ends the failure on its own.
    """

    def __init__(self, message: str, *, key: str, code: str = "") -> None:
        super().__init__(message)
        self.key = key
        self.code = code
