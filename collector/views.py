"""The collector under Django's own handling (the test client, runserver). Under gunicorn the same path is
answered ahead of Django by collector.intake.CollectorDispatch (config/wsgi.py), with the same function."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.csrf import csrf_exempt

from collector.intake import http_answer


@csrf_exempt
def batch(request: HttpRequest) -> HttpResponse:
    environ = dict(request.META)
    environ["wsgi.input"] = request  # HttpRequest.read() reads the body
    status, headers, payload = http_answer(environ)
    response = HttpResponse(payload, status=status)
    for name, value in headers:
        response[name] = value
    return response
