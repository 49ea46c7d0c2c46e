"""Real portfolio bodies against the OpenAPI schema the API serves (as tests/fuzz/test_schema_contract.py does
for the metrics): every range kind, costs hidden, a store without data, no comparison."""

from __future__ import annotations

import pytest
from django.db import transaction
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from tests.accounts.factories import MerchantFactory
from tests.agencies.portfolio_fixtures import *  # noqa: F403 — its fixtures (this module's `agency` is the portfolio's)
from tests.fuzz.conftest import in_process_requests  # noqa: F401 — fixture, used by name
from tests.fuzz.test_openapi import schema as served_schema

from .portfolio_fixtures import grant_make

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

QUERIES = [
    {},
    {"preset": "last_7_days", "compare": "none"},
    {"start": "2020-01-01", "end": "2020-01-31"},  # no data at all
    {"sort": "mer", "dir": "asc", "problem": "any"},
]


@pytest.mark.parametrize("query", QUERIES)
def test_portfolio_bodies_match_the_schema(query, clerk, ada, agency, alpine, beach, in_process_requests):  # noqa: F811
    grant_make(agency, alpine)
    grant_make(agency, beach, can_see_costs=False)
    grant_make(agency, MerchantFactory(name="Brand new"))
    operation = served_schema["/api/agencies/{agency_id}/portfolio/"]["GET"]
    case = operation.Case(path_parameters={"agency_id": agency.pk}, query=query)
    with transaction.atomic():
        response = case.call_and_validate(
            headers={"Authorization": f"Bearer {clerk.token(ada.clerk_user_id)}"},
            checks=[status_code_conformance, response_schema_conformance],
        )
        transaction.set_rollback(True)
    assert response.status_code == 200, response.text[:500]
    names = [s["name"] for s in response.json()["stores"]]
    assert "Brand new" in names and len(names) == (3 if "problem" not in query else len(names))
