"""Recording audit events: the one service every app calls, `audit_record`.

`audit_record` appends one event to the hash chain. Appends are serialised
(an advisory lock on PostgreSQL; SQLite's IMMEDIATE transactions take the
write lock at BEGIN), so concurrent writers never fork the chain, and each
event's id and timestamp are taken under that lock: id order is chain order.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from django.conf import settings
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.canonical import CHAINED_FIELDS, GENESIS_HASH, HASH_VERSION, detail_text, event_hash
from audit.codes import Code, EventID, EventType, Outcome
from audit.context import request_id_for
from audit.filters import AuditFilter
from audit.models import AuditEvent

# Any 64-bit constant that no other part of the system uses as an advisory lock key.
_CHAIN_LOCK_KEY: Final = 0x4F56_4552_4155_4431  # "OVERAUD1"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class _Actor:
    user_id: int | None = None
    username: str = ""
    role: str = ""
    source_ip: str = ""
    user_agent: str = ""
    session_hash: str = ""
    request_id: str = ""


def audit_record(
    *,
    event: Code,
    action: str,
    event_type: Code | None = None,
    outcome: int = Outcome.SUCCESS,
    outcome_reason: str = "",
    request: HttpRequest | None = None,
    user: Any = None,
    username: str = "",
    patient_id: str = "",
    accession: str = "",
    study_uid: str = "",
    series_uid: str = "",
    sop_uid: str = "",
    model_version: str = "",
    inference_job_id: int | None = None,
    detail: Mapping[str, Any] | None = None,
) -> AuditEvent:
    """Appends one event to the audit trail and returns it.

    `event` is a CID 400 code and `event_type` a CID 401/403 code (audit.codes).
    The acting user is `user`, else the request's signed-in user; `username`
    names an actor that has no account (the name tried at a failed sign-in, or
    a process such as "os:backup"). `request` fills in the source address,
    user agent, a hash of the session key (never the key) and the request id.
    `detail` holds strings, integers, booleans, null, lists and dicts (no
    floats); for edits, put {"before": ..., "after": ...} or a reference to
    the stored versions. Never put secrets in it.

    Runs in its own transaction, or in the caller's when there is one (then
    the event is kept only if the caller commits, and the chain stays locked
    until then: record near the end of long transactions).
    """
    actor = _actor(request=request, user=user, username=username)
    fields: dict[str, Any] = {
        "event_id": event.code,
        "event_type": event_type.code if event_type else "",
        "action": action,
        "outcome": outcome,
        "outcome_reason": _text(outcome_reason, 255),
        "user_id": actor.user_id,
        "username": actor.username,
        "role": actor.role,
        "source_ip": actor.source_ip,
        "user_agent": actor.user_agent,
        "session_hash": actor.session_hash,
        "request_id": actor.request_id,
        "patient_id": _text(patient_id, 64),
        "accession": _text(accession, 64),
        "study_uid": _text(study_uid, 64),
        "series_uid": _text(series_uid, 64),
        "sop_uid": _text(sop_uid, 64),
        "model_version": _text(model_version, 128),
        "inference_job_id": inference_job_id,
        "detail": detail_text(detail or {}),
        "hash_version": HASH_VERSION,
    }
    # Inside the caller's transaction no savepoint of its own (two round trips fewer): should
    # recording fail, the caller's transaction fails with it, which is what a caller wants.
    with transaction.atomic(savepoint=False):
        _lock_chain()
        last = AuditEvent.objects.order_by("-id").values_list("id", "hash").first()
        previous_id, previous_hash = last if last is not None else (0, GENESIS_HASH)
        audit_event = AuditEvent(
            id=previous_id + 1, occurred_at=timezone.now(), prev_hash=previous_hash, **fields
        )
        audit_event.hash = event_hash([getattr(audit_event, name) for name in CHAINED_FIELDS])
        audit_event.save(force_insert=True)
    return audit_event


def _lock_chain() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_KEY])
    elif connection.vendor != "sqlite":  # SQLite: BEGIN IMMEDIATE already holds the write lock
        list(AuditEvent.objects.select_for_update().order_by("-id").values_list("id")[:1])


def _actor(*, request: HttpRequest | None, user: Any, username: str) -> _Actor:
    if user is None and request is not None:
        user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    if request is None:
        return _Actor(
            user_id=user.pk if signed_in else None,
            username=_text(user.get_username() if signed_in else username, 150),
            role=_roles(user) if signed_in else "",
        )
    session = getattr(request, "session", None)
    session_key = session.session_key if session is not None else None
    return _Actor(
        user_id=user.pk if signed_in else None,
        username=_text(user.get_username() if signed_in else username, 150),
        role=_roles(user) if signed_in else "",
        source_ip=_client_address(request),
        user_agent=_text(request.META.get("HTTP_USER_AGENT", ""), 256),
        session_hash=hashlib.sha256(session_key.encode()).hexdigest() if session_key else "",
        request_id=request_id_for(request),
    )


def _roles(user: Any) -> str:
    # The groups are the roles (reviews.roles); read by name so audit depends on no app.
    # all(), not values_list(): the request's permission check has usually prefetched them.
    return _text(",".join(sorted(group.name for group in user.groups.all())), 64)


def _client_address(request: HttpRequest) -> str:
    address = request.META.get("REMOTE_ADDR", "")
    if getattr(settings, "SECURE_PROXY_SSL_HEADER", None):
        # Behind our reverse proxy the last X-Forwarded-For entry is the one it
        # added (the client it saw); earlier entries are whatever the client sent.
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        if forwarded:
            address = forwarded.rsplit(",", 1)[-1].strip()
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return ""


def _text(value: str, limit: int) -> str:
    """Control characters out (exports are line-based), cut to the column's length."""
    return _CONTROL_CHARACTERS.sub("\ufffd", value)[:limit]


def audit_permission_denied(*, request: HttpRequest) -> AuditEvent:
    """Records a refused request (any 403): 110113 Security Alert, 110132 Use of Restricted Function."""
    return audit_record(
        event=EventID.SECURITY_ALERT,
        event_type=EventType.USE_OF_RESTRICTED_FUNCTION,
        action="E",
        outcome=Outcome.MINOR_FAILURE,
        outcome_reason="permission denied",
        request=request,
        detail={"method": request.method or "", "path": request.path},
    )


def audit_hidden_refused(*, request: HttpRequest, exists: bool) -> None:
    """A request for something the caller may not see is answered 404, as if it did not exist;
    when it does exist, that is a refusal and is recorded as one (audit_permission_denied)."""
    if exists:
        audit_permission_denied(request=request)


def audit_log_used(*, request: HttpRequest, audit_filter: AuditFilter, page: str) -> AuditEvent:
    """Records that someone read the audit trail (110101 Audit Log Used): the review page or the API."""
    return audit_record(
        event=EventID.AUDIT_LOG_USED,
        action="R",
        request=request,
        detail={"view": page, "filters": audit_filter.as_params()},
    )
