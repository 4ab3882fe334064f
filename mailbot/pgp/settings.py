"""The ``[pgp]`` settings as this package uses them (read in ``mailbot.config_sections``)."""

from __future__ import annotations

from mailbot.config_sections import PgpSettings, fingerprint

__all__ = ["PgpSettings", "fingerprint"]
