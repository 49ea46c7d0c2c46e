"""Errors raised before any API view runs answer JSON under /api/, and the usual pages elsewhere."""

import pytest
from django.test import Client

from config.errors import NOT_FOUND


@pytest.mark.django_db
def test_an_api_url_that_matches_no_route_answers_json():
    response = Client(raise_request_exception=False).get("/api/merchants/not-a-number/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"detail": NOT_FOUND}


@pytest.mark.django_db
def test_a_page_url_that_matches_no_route_answers_html():
    response = Client().get("/m/not-a-number/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_api_server_error_answers_json(rf):
    from config.errors import SERVER_ERROR, server_error

    response = server_error(rf.get("/api/merchants/"))
    assert (response.status_code, response["Content-Type"]) == (500, "application/json")
    assert response.content == b'{"detail": "' + SERVER_ERROR.encode() + b'"}'
