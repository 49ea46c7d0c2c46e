"""Type-checks one call to each metrics endpoint of the generated client (issue 17 acceptance)."""

import datetime

from apiclient import AuthenticatedClient
from apiclient.api.metrics import (
    merchants_metrics_attribution_compare_retrieve as compare,
)
from apiclient.api.metrics import (
    merchants_metrics_attribution_retrieve as attribution,
)
from apiclient.api.metrics import (
    merchants_metrics_engagement_retrieve as engagement,
)
from apiclient.api.metrics import (
    merchants_metrics_ltv_retrieve as ltv,
)
from apiclient.api.metrics import (
    merchants_metrics_overview_retrieve as overview,
)
from apiclient.models import (
    AttributionCompareResponse,
    AttributionResponse,
    EngagementResponse,
    FieldErrors,
    LtvResponse,
    OverviewResponse,
)

client = AuthenticatedClient(base_url="http://127.0.0.1:8000", token="session-jwt")
start, end = datetime.date(2026, 1, 1), datetime.date(2026, 1, 31)

o = overview.sync(1, client=client, start=start, end=end)
if isinstance(o, OverviewResponse):
    currency: str = o.currency
    days: int = len(o.daily)
elif isinstance(o, FieldErrors):
    print(o.to_dict())
a = attribution.sync(1, client=client, start=start, end=end)
if isinstance(a, AttributionResponse):
    print(a.to_dict())
c = compare.sync(1, client=client, start=start, end=end)
if isinstance(c, AttributionCompareResponse):
    print(c.to_dict())
e = engagement.sync(1, client=client, start=start, end=end)
if isinstance(e, EngagementResponse):
    n: int = len(e.messages)
l_ = ltv.sync(1, client=client)
if isinstance(l_, LtvResponse):
    print(l_.to_dict())
