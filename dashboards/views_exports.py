"""CSV downloads of the dashboards' tables (dashboards/exports.py), for the range a page shows."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse

from accounts.access import EXPORT
from accounts.decorators import merchant_member_required, require_action
from dashboards.exports import CSV_TABLES, csv_lines
from dashboards.masking import mask_csv, masking_for
from dashboards.periods import date_range_parse


@merchant_member_required
def export_csv(request: HttpRequest, table: str) -> HttpResponse:
    if table not in CSV_TABLES:
        raise Http404("No such table.")
    require_action(request, EXPORT)  # 403: an agency viewer's grant does not cover taking the data away
    rows_of, default_preset = CSV_TABLES[table]
    try:
        dr = date_range_parse(request.GET, timezone=request.merchant.timezone, default_preset=default_preset)
    except ValidationError as exc:
        lines = [f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()]
        return HttpResponse("\n".join(lines) + "\n", status=400, content_type="text/plain; charset=utf-8")
    # Materialise the query before streaming so a database error is a 500 here, not a truncated download.
    rows = list(mask_csv(rows_of(request.merchant, dr, request.GET), masking_for(request.access)))
    name = f"{request.merchant.key}-{table}-{dr.current.start}-{dr.current.end}.csv"
    response = StreamingHttpResponse(csv_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
