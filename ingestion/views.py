"""Airbyte's webhook notifications (shared/INGESTION.md §1.7): the reason a sync failed, which the public
job API does not give.

Airbyte signs nothing, so the URL carries a token (ingestion.services.notification_tokens, compared in
constant time and never logged), and even an authentic-looking notification is only a hint: the service
confirms the job through GET /jobs/{id} before anything follows from it.

Answers: 200 recorded (confirmed); 202 pending (Airbyte could not confirm it now — the reason is kept and the
poller confirms it) or ignored (not a job of ours: Airbyte notifies every connection of the workspace, ones made
by hand or by another deployment sharing it included, and telling a sender which job ids we know would help
nobody but a prober); 400 not a sync notification; 403 no or wrong token; 405 not a POST.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from config.api import json_loads
from ingestion import services

logger = logging.getLogger(__name__)

NOT_A_NOTIFICATION = "not an Airbyte sync notification"


def _text(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValueError(key)
    return value[:limit]


def _parse(body: bytes) -> dict[str, Any]:
    """The fields of §1.7's `data` we use, typed; ValueError for anything else."""
    payload = json_loads(body)
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ValueError("data")
    job_id, connection, success = data.get("jobId"), data.get("connection"), data.get("success")
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 0 < job_id < 2**63:
        raise ValueError("jobId")
    if not isinstance(connection, dict) or not isinstance(connection.get("id"), str) or not connection["id"]:
        raise ValueError("connection.id")
    if not isinstance(success, bool):
        raise ValueError("success")
    return {
        "connection_id": connection["id"][:64],
        "airbyte_job_id": job_id,
        "success": success,
        "error_type": _text(data, "errorType", 64),
        "error_origin": _text(data, "errorOrigin", 32),
        "error_message": _text(data, "errorMessage", 2000),
    }


@csrf_exempt  # authenticated by the URL's token: Airbyte sends no cookie and no signature
@require_POST
@sensitive_post_parameters()
@sensitive_variables("token")
def airbyte_notification(request: HttpRequest) -> HttpResponse:
    token = request.GET.get("token", "")
    if not token or not services.notification_token_valid(token):
        logger.warning("Airbyte notification refused: no or wrong token")
        return JsonResponse({"error": "forbidden"}, status=403)
    try:
        fields = _parse(request.body)
    except ValueError as exc:  # JSON errors, too deep, wrong shapes (UnicodeDecodeError is a ValueError)
        logger.info("Airbyte notification refused: %s", type(exc).__name__)
        return JsonResponse({"error": NOT_A_NOTIFICATION}, status=400)
    outcome = services.job_notification_record(**fields)
    logger.info("Airbyte notification for job %s: %s", fields["airbyte_job_id"], outcome)
    return JsonResponse({"status": outcome}, status=200 if outcome == services.NOTIFICATION_RECORDED else 202)
