"""Google Ads' streams: the customer (an account billed in another currency) and daily campaign metrics."""

from __future__ import annotations

from sandbox.world.columns import declare
from sandbox.world.sources.common import DAY

CAMPAIGN_COLUMNS = declare(
    __name__,
    {"google_ads_campaign": 7},
    (
        "customer_id",
        "campaign_id",
        "campaign_name",
        "campaign_status",
        "campaign_advertising_channel_type",
        "campaign_bidding_strategy_type",
        "campaign_budget_amount_micros",
        "segments_date",
        "segments_ad_network_type",
        "segments_device",
        "metrics_clicks",
        "metrics_impressions",
        "metrics_cost_micros",
        "metrics_conversions",
        "metrics_conversions_value",
        "metrics_ctr",
        "metrics_average_cpc",
    ),
)
CUSTOMER_COLUMNS = declare(
    __name__,
    {"google_ads_customer": 8},
    (
        "customer_id",
        "customer_descriptive_name",
        "customer_currency_code",
        "customer_time_zone",
        "customer_manager",
        "customer_test_account",
        "customer_auto_tagging_enabled",
        "segments_date",
    ),
)


class GoogleAdsEmitter:
    """One customer billed in another currency; conversions keep arriving for three days."""

    def setup_google(self, first_sync: int) -> None:
        rng = self.rng
        # Google Ads: one customer (account) billed in another currency
        self.g_customer = 1_000_000_000 + self.mh % 100_000_000
        n_g = max(2, self.O // 40)
        kinds = ["SEARCH", "SHOPPING", "PERFORMANCE_MAX"]
        self.g_campaigns = []
        for i in range(n_g):
            gname = ["Brand Search", "Generic Search", "Shopping", "PMax"][i % 4] + f" {i + 1:02d}"
            self.g_campaigns.append(
                (20_000_000_000 + self.mh % 10_000 * 100 + i, gname, kinds[i % 3], rng.uniform(0.5, 1.5))
            )
        self.emit(
            "google_ads_customer",
            first_sync,
            f"{self.g_customer}\t{self.store_name} Ads\t{self.ad_currency}\t{self.tzname}\tf\tf\tt"
            f"\t{self.day_str(first_sync)}",
        )

    def google_ads_day(self, dstr: str, base_sync: int, budget: float) -> None:
        rng = self.rng
        for gid, gname, kind, weight in self.g_campaigns:
            for device in ("MOBILE", "DESKTOP", "TABLET"):
                for network in ("SEARCH", "CONTENT"):
                    cost = budget * 0.45 / len(self.g_campaigns) / 6 * weight * rng.uniform(0.5, 1.5) * 0.92
                    micros = int(cost * 1_000_000)
                    impressions = int(cost * rng.uniform(40, 90))
                    clicks = int(impressions * rng.uniform(0.02, 0.06))
                    conv = round(clicks * rng.uniform(0.02, 0.05), 2)
                    val = round(conv * rng.uniform(70, 110), 2)
                    for k in (0, 3):  # conversions keep arriving for a few days
                        share = 0.9 if k == 0 else 1.0
                        self.emit(
                            "google_ads_campaign",
                            base_sync + k * DAY,
                            f"{self.g_customer}\t{gid}\t{gname}\tENABLED\t{kind}\tMAXIMIZE_CONVERSION_VALUE"
                            f"\t{int(budget * 1_000_000 / 10)}\t{dstr}\t{network}\t{device}\t{clicks}\t{impressions}"
                            f"\t{micros}\t{round(conv * share, 2)}\t{round(val * share, 2)}"
                            f"\t{round(clicks / impressions, 4) if impressions else 0}"
                            f"\t{int(micros / clicks) if clicks else 0}",
                        )
