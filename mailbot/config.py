"""The TOML config file, parsed once into frozen, typed settings.

This module is the only reader of the file. Every check names the key and what was expected, so an
operator with a typo sees ``policy.timezone: expected an IANA timezone such as "Europe/Amsterdam"``
instead of a traceback. Tests build the settings objects directly.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, time
from email.utils import parseaddr
from functools import cached_property
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailbot.config_keys import Reader, as_date
from mailbot.config_sections import (
    MetricsSettings,
    PgpSettings,
    ReportSettings,
    SecurityTxtSettings,
    listen_address,
    pgp_settings,
    securitytxt_settings,
    team_pgp_keys,
)
from mailbot.config_storage import (
    RETENTION_KEYS,
    STORAGE_KEYS,
    RetentionSettings,
    StorageSettings,
    read_retention,
    read_storage,
)
from mailbot.errors import ConfigError
from mailbot.oauth2.settings import OAUTH2_KEYS, OAuth2Settings, read_oauth2
from mailbot.web.settings import WEB_KEYS, WebSettings, read_web

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SECURITY_MODES = ("tls", "starttls", "none")
AUTH_MODES = ("password", "oauth2")
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True, kw_only=True)
class MailboxSettings:
    host: str
    port: int = 993
    security: str = "tls"
    username: str
    password: str = field(default="", repr=False)
    # Where the password came from, for the error that asks a person to fix it.
    password_key: str = "mailbox.password_env"
    auth: str = "password"  # or "oauth2"
    oauth2: OAuth2Settings | None = None  # [oauth2] merged with [mailbox.oauth2], when auth=oauth2
    folder: str = "INBOX"
    sent_folder: str = "Sent"
    idle: bool = True
    poll_seconds: int = 60
    batch_size: int = 100
    timeout_seconds: int = 30
    verify_tls: bool = True
    # False: mail already in a folder when mailbot first reads it is imported (recorded, never
    # answered, no deadlines); True: it is answered as if it had just arrived.
    answer_existing: bool = False
    login_retry_seconds: int = 60  # first wait after a refused login; doubles up to 30 min
    # Processes that parse a backlog's batches ahead of the daemon; None: one per core beyond the
    # first (at most 4); 0: every message parsed in the daemon's process.
    parse_processes: int | None = None

    @property
    def folders(self) -> tuple[str, ...]:
        """The folders mailbot reads: the inbox, then the Sent folder when one is watched."""
        if self.sent_folder and self.sent_folder != self.folder:
            return (self.folder, self.sent_folder)
        return (self.folder,)


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    host: str
    port: int = 587
    security: str = "starttls"
    username: str = ""
    password: str = field(default="", repr=False)
    password_key: str = "smtp.password_env"
    auth: str = "password"  # or "oauth2"
    oauth2: OAuth2Settings | None = None  # [oauth2] merged with [smtp.oauth2], when auth=oauth2
    from_address: str  # the TOML key is "from"
    timeout_seconds: int = 30
    verify_tls: bool = True
    login_retry_seconds: int = 60

    @cached_property  # read for every message and every receipt
    def from_addr_spec(self) -> str:
        """The bare address of ``from``, lower-cased: ``security@example.com``."""
        return parseaddr(self.from_address)[1].lower()


@dataclass(frozen=True, kw_only=True)
class DatabaseSettings:
    url: str = "sqlite:///mailbot.db"


@dataclass(frozen=True, kw_only=True)
class TeamSettings:
    addresses: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    authserv_id: str = ""
    trust_unauthenticated: bool = False
    pgp_keys: tuple[str, ...] = ()  # fingerprints whose good signatures prove team mail


@dataclass(frozen=True, kw_only=True)
class PolicySettings:
    case_prefix: str = "SEC"
    timezone: str = "UTC"
    workdays: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    holidays: tuple[date, ...] = ()
    holiday_country: str = ""
    ack_business_days: int = 3
    assessment_business_days: int = 7
    at_risk_business_days: int = 1
    business_hours: tuple[time, time] = (time(9, 0), time(17, 0))
    receipts_per_sender_per_day: int = 5
    receipts_per_hour: int = 60  # all receipts together; more are held back and counted
    max_message_bytes: int = 26_214_400
    digest_time: time | None = None  # daily on-call digest; None = off
    receipt_max_age_hours: int = 72  # no receipt for a message older than this
    subjects_in_notifications: bool = False  # reminders etc. name the report's subject
    disclosure_warning_business_days: int = 5  # remind on-call this long before disclosure
    update_interval_business_days: int = 20  # remind on-call to update the reporter; 0 = off
    duplicate_similarity_percent: int = 25  # flag a new report this like an open case; 0 = off

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, kw_only=True)
class OncallSettings:
    addresses: tuple[str, ...] = ()
    rotation: tuple[str, ...] = ()
    rotation_start: date | None = None
    rotation_days: int = 7


@dataclass(frozen=True, kw_only=True)
class SecretsSettings:
    token_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, kw_only=True)
class TemplateSettings:
    directory: str = ""  # a folder whose files override the built-in templates


@dataclass(frozen=True, kw_only=True)
class Settings:
    mailbox: MailboxSettings
    smtp: SmtpSettings
    database: DatabaseSettings = DatabaseSettings()
    team: TeamSettings = TeamSettings()
    policy: PolicySettings = PolicySettings()
    oncall: OncallSettings = OncallSettings()
    secrets: SecretsSettings = SecretsSettings()
    templates: TemplateSettings = TemplateSettings()
    web: WebSettings = field(default_factory=WebSettings)
    report: ReportSettings = field(default_factory=ReportSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    securitytxt: SecurityTxtSettings = field(default_factory=SecurityTxtSettings)
    pgp: PgpSettings = field(default_factory=PgpSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    source: str = ""  # the file these settings came from, for messages

    @property
    def own_address(self) -> str:
        return self.smtp.from_addr_spec


# ---------------------------------------------------------------------------------------------
# Reading the file


# The sections whose secrets (password, or OAuth2 client secret) a command can ask for. A command
# that does not speak IMAP or SMTP (the case commands, health, ...) loads neither, so it runs
# where those secrets are not set.
SERVER_SECRETS = frozenset({"mailbox", "smtp"})


def load_settings(
    path: str | Path,
    environ: Mapping[str, str] | None = None,
    *,
    secrets: frozenset[str] = SERVER_SECRETS,
) -> Settings:
    """Read and validate a config file; raise ConfigError naming the first bad key.

    ``secrets`` names the sections (``mailbox``, ``smtp``) whose login secrets are read; the
    others keep an empty password (and no OAuth2 settings) and need none to be set.
    """
    env = os.environ if environ is None else environ
    p = Path(path)
    try:
        text = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            "config",
            f"a config file at {str(p)!r}; copy config.example.toml there and edit it, "
            "or point at yours with --config PATH (or MAILBOT_CONFIG)",
        ) from None
    except OSError as exc:
        raise ConfigError("config", f"a readable TOML file ({exc.strerror})", str(p)) from None
    try:
        data = tomllib.loads(text.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError("config", f"valid TOML ({exc})") from None
    return settings_from_mapping(data, environ=env, base_dir=p.parent, source=str(p),
                                 secrets=secrets)


_KNOWN: dict[str, set[str]] = {
    "mailbox": {
        "host", "port", "security", "username", "password", "password_env", "password_file",
        "folder", "sent_folder", "idle", "poll_seconds", "batch_size", "timeout_seconds",
        "verify_tls", "auth", "oauth2", "answer_existing",
        "login_retry_seconds", "parse_processes",
    },
    "smtp": {
        "host", "port", "security", "username", "password", "password_env", "password_file",
        "from", "timeout_seconds", "verify_tls", "auth", "oauth2", "login_retry_seconds",
    },
    "database": {"url"},
    "team": {"addresses", "domains", "authserv_id", "trust_unauthenticated", "pgp_keys"},
    "policy": {
        "case_prefix", "timezone", "workdays", "holidays", "holiday_country",
        "ack_business_days", "assessment_business_days", "at_risk_business_days",
        "business_hours", "receipts_per_sender_per_day", "receipts_per_hour",
        "max_message_bytes", "digest_time", "receipt_max_age_hours",
        "subjects_in_notifications",
        "disclosure_warning_business_days", "update_interval_business_days",
        "duplicate_similarity_percent",
    },
    "oncall": {"addresses", "rotation", "rotation_start", "rotation_days"},
    "secrets": {"token_key", "token_key_env", "token_key_file"},
    "templates": {"directory"},
    "oauth2": set(OAUTH2_KEYS),
    "web": set(WEB_KEYS),
    "report": {"monthly_to"},
    "metrics": {"listen"},
    "securitytxt": {
        "expires_days", "policy", "acknowledgments", "preferred_languages", "canonical",
        "encryption", "hiring", "path",
    },
    "pgp": {
        "home", "key", "passphrase", "passphrase_env", "passphrase_file", "attach_public_key",
        "encrypt_to_reporters", "timeout_seconds", "max_key_bytes",
    },
    "storage": set(STORAGE_KEYS),
    "retention": set(RETENTION_KEYS),
}


def settings_from_mapping(
    data: Mapping[str, Any],
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: Path | None = None,
    source: str = "",
    secrets: frozenset[str] = SERVER_SECRETS,
) -> Settings:
    """Validate an already-parsed TOML document."""
    env = os.environ if environ is None else environ
    base = base_dir or Path.cwd()
    for section, value in data.items():
        if section not in _KNOWN:
            raise ConfigError(section, f"one of the sections {sorted(_KNOWN)}")
        if not isinstance(value, dict):
            raise ConfigError(section, "a table ([section])", value)
        for key in value:
            if key not in _KNOWN[section]:
                raise ConfigError(f"{section}.{key}", f"one of the keys {sorted(_KNOWN[section])}")
    r = Reader(data, env, base)
    return Settings(
        mailbox=_mailbox(r, data, with_secret="mailbox" in secrets),
        smtp=_smtp(r, data, with_secret="smtp" in secrets),
        database=DatabaseSettings(url=r.text("database.url", "sqlite:///mailbot.db")),
        team=_team(r),
        policy=_policy(r),
        oncall=_oncall(r),
        secrets=_secrets(r),
        templates=TemplateSettings(directory=r.text("templates.directory", "", allow_empty=True)),
        web=read_web(r),
        report=ReportSettings(monthly_to=tuple(r.addresses("report.monthly_to"))),
        metrics=MetricsSettings(listen=listen_address(r, "metrics.listen")),
        securitytxt=securitytxt_settings(r),
        pgp=pgp_settings(r),
        storage=read_storage(r, base),
        retention=read_retention(r),
        source=source,
    )


def _mailbox(r: Reader, data: Mapping[str, Any], *, with_secret: bool = True) -> MailboxSettings:
    host = r.text("mailbox.host")
    security = r.choice("mailbox.security", SECURITY_MODES, "tls")
    _check_plain_is_loopback("mailbox", host, security)
    username = r.text("mailbox.username")
    auth = r.choice("mailbox.auth", AUTH_MODES, "password")
    return MailboxSettings(
        host=host,
        port=r.port("mailbox.port", 993),
        security=security,
        username=username,
        password=r.secret("mailbox", required=auth == "password") if with_secret else "",
        password_key=r.secret_key("mailbox"),
        auth=auth,
        oauth2=(_oauth2(r, data, "mailbox", username)
                if auth == "oauth2" and with_secret else None),
        folder=r.text("mailbox.folder", "INBOX"),
        sent_folder=r.text("mailbox.sent_folder", "Sent", allow_empty=True),
        idle=r.boolean("mailbox.idle", True),
        poll_seconds=r.integer("mailbox.poll_seconds", 60, minimum=1),
        batch_size=r.integer("mailbox.batch_size", 100, minimum=1),
        timeout_seconds=r.integer("mailbox.timeout_seconds", 30, minimum=1),
        verify_tls=r.boolean("mailbox.verify_tls", True),
        answer_existing=r.boolean("mailbox.answer_existing", False),
        login_retry_seconds=r.integer("mailbox.login_retry_seconds", 60, minimum=1),
        parse_processes=None if r.raw("mailbox.parse_processes") is None
        else r.integer("mailbox.parse_processes", 0, minimum=0),
    )


def _smtp(r: Reader, data: Mapping[str, Any], *, with_secret: bool = True) -> SmtpSettings:
    host = r.text("smtp.host")
    security = r.choice("smtp.security", SECURITY_MODES, "starttls")
    _check_plain_is_loopback("smtp", host, security)
    sender = r.text("smtp.from")
    addr = parseaddr(sender)[1]
    if "@" not in addr:
        raise ConfigError("smtp.from", 'an address such as "Security Team <security@example.com>"',
                          sender)
    auth = r.choice("smtp.auth", AUTH_MODES, "password")
    # An OAuth2 login always names a user: by default the address mailbot sends from.
    username = r.text("smtp.username", addr.lower() if auth == "oauth2" else "", allow_empty=True)
    return SmtpSettings(
        host=host,
        port=r.port("smtp.port", 587),
        security=security,
        username=username,
        password=r.secret("smtp", required=False) if with_secret else "",
        password_key=r.secret_key("smtp"),
        auth=auth,
        oauth2=_oauth2(r, data, "smtp", username) if auth == "oauth2" and with_secret else None,
        from_address=sender,
        timeout_seconds=r.integer("smtp.timeout_seconds", 30, minimum=1),
        verify_tls=r.boolean("smtp.verify_tls", True),
        login_retry_seconds=r.integer("smtp.login_retry_seconds", 60, minimum=1),
    )


def _oauth2(r: Reader, data: Mapping[str, Any], section: str, username: str) -> OAuth2Settings:
    """``[oauth2]``, with the keys of ``[<section>.oauth2]`` taking precedence."""
    shared = data.get("oauth2", {})
    own = data.get(section, {}).get("oauth2", {})
    if not isinstance(own, dict):
        raise ConfigError(f"{section}.oauth2", "a table ([" + section + ".oauth2])", own)
    for key in own:
        if key not in OAUTH2_KEYS:
            raise ConfigError(f"{section}.oauth2.{key}", f"one of the keys {sorted(OAUTH2_KEYS)}")
    if not shared and not own:
        raise ConfigError("oauth2.provider", f"an [oauth2] table when {section}.auth is oauth2")
    try:
        return read_oauth2(Reader({"oauth2": {**shared, **own}}, r.env, r.base), base=r.base,
                           username=username)
    except ConfigError as exc:
        name = exc.key.partition(".")[2]
        if name in own:
            raise ConfigError(f"{section}.oauth2.{name}", exc.expected, exc.got) from None
        raise


def _team(r: Reader) -> TeamSettings:
    return TeamSettings(
        addresses=tuple(a.lower() for a in r.addresses("team.addresses")),
        domains=tuple(d.lower().lstrip("@") for d in r.str_list("team.domains")),
        authserv_id=r.text("team.authserv_id", "", allow_empty=True),
        trust_unauthenticated=r.boolean("team.trust_unauthenticated", False),
        pgp_keys=team_pgp_keys(r),
    )


_PREFIX = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")


def _policy(r: Reader) -> PolicySettings:
    prefix = r.text("policy.case_prefix", "SEC")
    if not _PREFIX.match(prefix):
        raise ConfigError("policy.case_prefix", "1-16 upper-case letters or digits, such as SEC",
                          prefix)
    tz = r.text("policy.timezone", "UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("policy.timezone", 'an IANA timezone such as "Europe/Amsterdam"',
                          tz) from None
    workdays = tuple(w.lower() for w in r.str_list("policy.workdays",
                                                    ["mon", "tue", "wed", "thu", "fri"]))
    for w in workdays:
        if w not in WEEKDAYS:
            raise ConfigError("policy.workdays", f"day names from {list(WEEKDAYS)}", w)
    if not workdays:
        raise ConfigError("policy.workdays", "at least one working day", [])
    country = r.text("policy.holiday_country", "", allow_empty=True).upper()
    if country:
        import holidays

        if country not in holidays.list_supported_countries():
            raise ConfigError(
                "policy.holiday_country",
                'an ISO 3166 country code that the holidays package knows, such as "NL"',
                country,
            )
    digest = r.text("policy.digest_time", "", allow_empty=True)
    similarity = r.integer("policy.duplicate_similarity_percent", 25, minimum=0)
    if similarity > 100:
        raise ConfigError("policy.duplicate_similarity_percent", "a whole number from 0 to 100",
                          similarity)
    return PolicySettings(
        case_prefix=prefix,
        timezone=tz,
        workdays=workdays,
        holidays=tuple(r.date_list("policy.holidays")),
        holiday_country=country,
        ack_business_days=r.integer("policy.ack_business_days", 3, minimum=1),
        assessment_business_days=r.integer("policy.assessment_business_days", 7, minimum=1),
        at_risk_business_days=r.integer("policy.at_risk_business_days", 1, minimum=0),
        business_hours=_hours(r.text("policy.business_hours", "09:00-17:00")),
        receipts_per_sender_per_day=r.integer("policy.receipts_per_sender_per_day", 5, minimum=0),
        receipts_per_hour=r.integer("policy.receipts_per_hour", 60, minimum=0),
        max_message_bytes=r.integer("policy.max_message_bytes", 26_214_400, minimum=1024),
        digest_time=_clock_time("policy.digest_time", digest) if digest else None,
        receipt_max_age_hours=r.integer("policy.receipt_max_age_hours", 72, minimum=1),
        subjects_in_notifications=r.boolean("policy.subjects_in_notifications", False),
        disclosure_warning_business_days=r.integer("policy.disclosure_warning_business_days", 5,
                                                   minimum=0),
        update_interval_business_days=r.integer("policy.update_interval_business_days", 20,
                                                minimum=0),
        duplicate_similarity_percent=similarity,
    )


def _hours(value: str) -> tuple[time, time]:
    start, sep, end = value.partition("-")
    if not sep:
        raise ConfigError("policy.business_hours", 'a range such as "09:00-17:00"', value)
    a = _clock_time("policy.business_hours", start.strip())
    b = _clock_time("policy.business_hours", end.strip())
    if not a < b:
        raise ConfigError("policy.business_hours", "a start before the end", value)
    return a, b


def _clock_time(key: str, value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise ConfigError(key, 'a time of day such as "09:00"', value) from None


def _oncall(r: Reader) -> OncallSettings:
    addresses = tuple(r.addresses("oncall.addresses"))
    rotation = tuple(r.addresses("oncall.rotation"))
    start_raw = r.raw("oncall.rotation_start")
    start: date | None = None
    if start_raw not in (None, ""):
        start = as_date("oncall.rotation_start", start_raw)
    if rotation and start is None:
        raise ConfigError("oncall.rotation_start", "a date (YYYY-MM-DD) when a rotation is set")
    return OncallSettings(
        addresses=addresses,
        rotation=rotation,
        rotation_start=start,
        rotation_days=r.integer("oncall.rotation_days", 7, minimum=1),
    )


def _secrets(r: Reader) -> SecretsSettings:
    key = r.secret("secrets", required=False, prefix="token_key")
    return SecretsSettings(token_key=key.encode("utf-8"))


def _check_plain_is_loopback(section: str, host: str, security: str) -> None:
    if security == "none" and host not in LOOPBACK_HOSTS:
        raise ConfigError(f"{section}.security",
                          '"tls" or "starttls" for a host other than loopback '
                          "(plain text would expose the password)", security)
