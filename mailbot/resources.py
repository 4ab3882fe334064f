"""Finding the folders that ship beside the package: templates/ and migrations/."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def resource_dir(name: str) -> Path:
    """``<name>`` inside an installed wheel, or at the top of a checkout (editable install)."""
    packaged = files("mailbot") / name
    if packaged.is_dir():
        return Path(str(packaged))
    checkout = Path(__file__).resolve().parent.parent / name
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"mailbot cannot find its {name}/ folder")
