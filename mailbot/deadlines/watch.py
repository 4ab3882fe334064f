"""The deadline watch (placeholder until the business-day watch lands)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def watch(app: Any, now: datetime) -> int:
    return 0
