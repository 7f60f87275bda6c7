"""DICOM JSON (PS3.18 F.2): building elements, and serving stored metadata.

Stored metadata (Instance.metadata) holds BulkDataURIs relative to its
instance ("bulkdata/7FE00010"); served metadata needs them absolute. The text
is rewritten as text: the database hands the JSON over as a string, and series
metadata for hundreds of instances goes out without being parsed and
re-encoded in Python.
"""

from __future__ import annotations

import json
import re
from typing import Any

DICOM_JSON = "application/dicom+json"
Element = dict[str, Any]

# A BulkDataURI value that is relative to its instance. Inside a JSON string a
# quote is always escaped, so this can only match the real key and value.
_RELATIVE_BULKDATA = re.compile(r'"BulkDataURI":\s*"bulkdata/')


def element(vr: str, *values: Any) -> Element:
    """One DICOM JSON element; empty values (None, "") leave it without a Value."""
    present = [value for value in values if value is not None and value != ""]
    return {"vr": vr, "Value": present} if present else {"vr": vr}


def person_name(name: str) -> Element:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]} if name else {"vr": "PN"}


def numbers(vr: str, values: list[float] | None) -> Element:
    """A DS/FD/US element from a list of numbers stored in a JSON column."""
    return element(vr, *(values or []))


def absolute_bulkdata(metadata_text: str, instance_url: str) -> str:
    """Stored metadata text with its relative BulkDataURIs made absolute under `instance_url`."""
    prefix = json.dumps(f"{instance_url}/bulkdata/")[:-1]  # the opening quote and the escaped URL
    return _RELATIVE_BULKDATA.sub(lambda _match: f'"BulkDataURI": {prefix}', metadata_text)


def without_bulkdata(metadata: dict[str, Element]) -> dict[str, Element]:
    """The elements of stored metadata that carry their values (no BulkDataURI)."""
    return {
        tag.upper(): value
        for tag, value in metadata.items()
        if isinstance(value, dict) and "BulkDataURI" not in value and not tag.upper().startswith("0002")
    }


def dumps(value: Any) -> bytes:
    """Compact JSON bytes (QIDO responses are small; no third-party encoder needed)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
