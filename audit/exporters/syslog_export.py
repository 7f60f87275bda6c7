"""RFC 5424 syslog messages, one per line (newline-delimited, as a log file holds them).

    <PRI>1 TIMESTAMP HOSTNAME overread - MSGID [overread@32473 field="value" ...] BOM MSG

PRI uses facility 13 (log audit) and a severity from the outcome (0 -> 6
informational, 4 -> 4 warning, 8 -> 3 error, 12 -> 2 critical); MSGID is the
CID 400 event id; the structured data element carries every chained field,
`hash` and `hash_version`, with `"`, `\\` and `]` escaped as RFC 5424
section 6.3.3 requires; MSG is a short UTF-8 summary.

Written by hand rather than with a syslog handler package: those format
Python logging records (the current time, one record at a time through the
logging machinery), while an export needs each event's own timestamp and
structured data, for a million events at a time. Tests check every line
against a regular expression built from the RFC's ABNF. 32473 is the private
enterprise number RFC 5612 reserves for documentation; an installation with
its own number can change SD_ID.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterable, Iterator
from typing import Any, Final

from audit.canonical import EXPORT_FIELDS, OCCURRED_AT
from audit.codes import event_meaning, event_type_meaning

SD_ID: Final = "overread@32473"
APP_NAME: Final = "overread"
_FACILITY_LOG_AUDIT: Final = 13
_SEVERITY: Final = {0: 6, 4: 4, 8: 3, 12: 2}
_BOM: Final = "\ufeff"
_SD_ESCAPE = re.compile(r'(["\\\]])')
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_EVENT_ID = EXPORT_FIELDS.index("event_id")
_EVENT_TYPE = EXPORT_FIELDS.index("event_type")
_OUTCOME = EXPORT_FIELDS.index("outcome")
_USERNAME = EXPORT_FIELDS.index("username")


def hostname() -> str:
    """This machine's name as RFC 5424 allows it (printable US-ASCII, at most 255), or "-"."""
    name = _NOT_PRINTUSASCII.sub("", socket.getfqdn())[:255]
    return name or "-"


def _sd_escape(value: str) -> str:
    return _SD_ESCAPE.sub(r"\\\1", value)


def pieces(rows: Iterable[tuple[Any, ...]]) -> Iterator[str]:
    host = hostname()
    for row in rows:
        values = list(row)
        params = " ".join(
            f'{name}="{_sd_escape(str(value))}"'
            for name, value in zip(EXPORT_FIELDS, values, strict=True)
            if value is not None
        )
        priority = _FACILITY_LOG_AUDIT * 8 + _SEVERITY.get(row[_OUTCOME], 5)
        summary = event_meaning(row[_EVENT_ID])
        if row[_EVENT_TYPE]:
            summary += f" / {event_type_meaning(row[_EVENT_TYPE])}"
        summary += f" outcome={row[_OUTCOME]} user={row[_USERNAME] or '-'}"
        yield (
            f"<{priority}>1 {values[OCCURRED_AT]} {host} {APP_NAME} - {_msgid(row[_EVENT_ID])} "
            f"[{SD_ID} {params}] {_BOM}{summary}\n"
        )


def _msgid(event_id: str) -> str:
    return _NOT_PRINTUSASCII.sub("", event_id)[:32] or "-"
