"""The one way to write to the audit log."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from compliance.choices import ActorType
from compliance.models import AuditEvent

METADATA_SECRET_KEY = "Audit metadata must not carry secrets: key {key!r} looks like one."
METADATA_SECRET_VALUE = "Audit metadata must not carry secrets: the value at {path!r} looks like one."

_SECRET_KEY_NAME = re.compile(
    r"(?i)(^|_)(password|passwd|secret|token|access_token|refresh_token|api_key|apikey|authorization|"
    r"client_secret|private_key|code_verifier)($|_)"
)
# Values that are secrets whatever key they sit under.
_SECRET_VALUE = re.compile(
    r"(?i)^bearer\s|\b(?:sk|pk|rk)_(?:live_|test_)?[A-Za-z0-9]{8,}|\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.|"
    r"\bEAA[A-Za-z0-9]{20,}|\bya29\.|\b1//[A-Za-z0-9_-]{20,}|\bshp(?:at|ca|ua|rt|ss)_[A-Za-z0-9_]{8,}|"
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
)


class AuditMetadataError(ValueError):
    pass


@dataclass(frozen=True)
class Actor:
    type: str
    id: str = ""
    label: str = ""

    @classmethod
    def system(cls, label: str = "system") -> Actor:
        return cls(type=ActorType.SYSTEM, id="", label=label)


def _check_metadata(value: Any, path: str = "") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if _SECRET_KEY_NAME.search(str(key)):
                raise AuditMetadataError(METADATA_SECRET_KEY.format(key=key))
            _check_metadata(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_metadata(item, f"{path}[{index}]")
    elif isinstance(value, str) and _SECRET_VALUE.search(value):
        raise AuditMetadataError(METADATA_SECRET_VALUE.format(path=path or "(root)"))


def audit_event_record(
    *,
    action: str,
    actor: Actor,
    target_type: str = "",
    target_id: str | int = "",
    merchant=None,
    merchant_id: int | None = None,
    ip: str | None = None,
    user_agent: str = "",
    metadata: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event. Refuses metadata that looks like it carries a secret (raises AuditMetadataError)."""
    metadata = metadata or {}
    _check_metadata(metadata)
    return AuditEvent.objects.create(
        occurred_at=timezone.now(),
        actor_type=actor.type,
        actor_id=str(actor.id)[:128],
        actor_label=actor.label[:255],
        action=action,
        target_type=target_type,
        target_id=str(target_id)[:128],
        merchant_id=merchant.pk if merchant is not None else merchant_id,
        ip=ip or None,
        user_agent=(user_agent or "")[:512],
        metadata=metadata,
    )


def request_context(request) -> dict[str, Any]:
    """The ip and user agent of a request, for `audit_event_record(**request_context(request), ...)`."""
    return {"ip": request.META.get("REMOTE_ADDR") or None, "user_agent": request.headers.get("User-Agent", "")}
