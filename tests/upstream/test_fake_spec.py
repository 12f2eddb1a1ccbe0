"""upstream.spec copies names from the contract file; these tests keep the copies equal to it."""

from __future__ import annotations

from functools import cache
from typing import Any

import yaml

from upstream.spec import EVENT_TYPES, INFORMATION_PARTS, OPERATIONS, contract_path, path_prefix


@cache
def _contract() -> dict[str, Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loaded: dict[str, Any] = yaml.load(contract_path().read_text(encoding="utf-8"), Loader=loader)
    return loaded


def test_enums_are_the_contracts() -> None:
    schemas = _contract()["components"]["schemas"]
    assert list(INFORMATION_PARTS) == schemas["InformationPart"]["enum"]
    assert list(EVENT_TYPES) == schemas["EventType"]["enum"]


def test_every_operation_is_in_the_contract_on_both_bundles() -> None:
    paths = _contract()["paths"]
    for bundle in ("legal-basis", "no-legal-basis"):
        for method, path in OPERATIONS.values():
            assert method.lower() in paths[path_prefix("2", bundle) + path], (bundle, path)


def test_the_contract_ships_in_the_package() -> None:
    text = contract_path().read_text(encoding="utf-8")
    assert text.startswith("openapi: 3.0.1") and "Persontjenesten API" in text
    assert (contract_path().parent / "SOURCE.md").is_file()
