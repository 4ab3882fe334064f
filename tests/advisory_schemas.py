"""The published JSON schemas of CSAF 2.0 (with FIRST's CVSS schemas) and OSV, from tests/data.

Validation never touches the network: the CVSS schemas that CSAF's schema refers to by URL are
served from a local ``referencing`` registry (see tests/data/schemas/SOURCES.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMAS = Path(__file__).parent / "data" / "schemas"
# The URLs CSAF 2.0's schema refers to, and the vendored file behind each.
CVSS_SCHEMAS = {
    "https://www.first.org/cvss/cvss-v2.0.json": "cvss-v2.0.json",
    "https://www.first.org/cvss/cvss-v3.0.json": "cvss-v3.0.json",
    "https://www.first.org/cvss/cvss-v3.1.json": "cvss-v3.1.json",
}


def _load(name: str) -> Any:
    return json.loads((SCHEMAS / name).read_text(encoding="utf-8"))


def _validator(name: str) -> Draft202012Validator:
    # A Registry retrieves nothing it was not given: a reference to anything not vendored
    # fails (referencing.exceptions.Unresolvable) instead of going to the network.
    registry: Registry[Any] = Registry()
    for uri, file in CVSS_SCHEMAS.items():
        registry = registry.with_resource(uri, Resource.from_contents(_load(file)))
    schema = _load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


CSAF = _validator("csaf_json_schema.json")
OSV = _validator("osv_schema.json")


def errors(validator: Draft202012Validator, document: Any) -> list[str]:
    """Every schema violation, one line each (empty when the document is valid)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(document), key=lambda e: list(e.path))]
