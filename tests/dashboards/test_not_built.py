"""Before the first dbt build the marts do not exist: pages explain, the API answers 503, nothing 500s."""

import pytest
from django.test import RequestFactory

from config.api import exception_handler
from dashboards.middleware import MartsNotBuiltMiddleware
from dashboards.selectors import MartsNotBuilt, _rows
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def test_a_missing_mart_raises_marts_not_built():
    with pytest.raises(MartsNotBuilt, match="does not exist"):
        _rows("SELECT * FROM analytics.no_such_mart WHERE merchant_id = %(m)s", {"m": 1})


def test_pages_explain_instead_of_failing():
    membership = MembershipFactory()
    request = RequestFactory().get(f"/m/{membership.merchant.pk}/overview/")
    request.merchant, request.membership, request.clerk = membership.merchant, membership, None
    response = MartsNotBuiltMiddleware(lambda r: None).process_exception(request, MartsNotBuilt("no mart"))
    assert response.status_code == 503
    assert "Your dashboards are being prepared" in response.content.decode()


def test_the_api_answers_503_with_a_reason():
    response = exception_handler(MartsNotBuilt("no mart"), {})
    assert response.status_code == 503
    assert "not been built yet" in response.data["detail"]
