"""Meta's streams: the ad account's campaigns and the daily ads insights Meta restates for 28 days."""

from __future__ import annotations

from sandbox.world.columns import declare
from sandbox.world.sources.common import DAY

INSIGHTS_COLUMNS = declare(
    __name__,
    {"facebook_marketing_ads_insights": 5},
    (
        "account_id",
        "account_name",
        "account_currency",
        "campaign_id",
        "campaign_name",
        "adset_id",
        "adset_name",
        "ad_id",
        "ad_name",
        "date_start",
        "date_stop",
        "created_time",
        "updated_time",
        "objective",
        "spend",
        "impressions",
        "clicks",
        "inline_link_clicks",
        "reach",
        "cpc",
        "cpm",
        "ctr",
        "actions",
        "action_values",
    ),
)
CAMPAIGN_COLUMNS = declare(
    __name__,
    {"facebook_marketing_campaigns": 6},
    (
        "id",
        "account_id",
        "name",
        "objective",
        "status",
        "effective_status",
        "daily_budget",
        "bid_strategy",
        "buying_type",
        "created_time",
        "start_time",
        "updated_time",
    ),
)


class MetaEmitter:
    """One ad account in the shop's currency; insights restated at 2, 9 and 27 days."""

    def setup_meta(self, created: str, first_sync: int) -> None:
        rng = self.rng
        # Meta: one ad account in the shop currency
        self.fb_account = f"{10_000_000_000 + self.mh % 1_000_000}"
        n_fb = max(2, self.O // 30)
        self.fb_campaigns = []
        for i in range(n_fb):
            cid = f"{23_850_000_000_000 + self.mh % 10_000 * 1000 + i}"
            cname = ["Prospecting", "Retargeting", "Advantage+ Shopping", "Lookalike"][i % 4] + f" {i + 1:02d}"
            ads = [(f"{cid}{a:02d}", f"{cname} / Ad {a + 1}") for a in range(6)]
            weight = rng.uniform(0.5, 1.5)
            self.fb_campaigns.append((cid, cname, ads, weight))
            self.emit(
                "facebook_marketing_campaigns",
                first_sync,
                f"{cid}\t{self.fb_account}\t{cname}\tOUTCOME_SALES\tACTIVE\tACTIVE\t{rng.randrange(50, 500)}00"
                f"\tLOWEST_COST_WITHOUT_CAP\tAUCTION\t{created}\t{created}\t{created}",
            )

    def meta_insights(self, dstr: str, base_sync: int, budget: float) -> None:
        rng = self.rng
        n_ads = sum(len(c[2]) for c in self.fb_campaigns)
        for cid, cname, ads, weight in self.fb_campaigns:
            for ad_id, ad_name in ads:
                spend = round(budget * 0.55 / n_ads * weight * rng.uniform(0.6, 1.4), 2)
                impressions = int(spend * rng.uniform(60, 120))
                clicks = int(impressions * rng.uniform(0.008, 0.02))
                purchases = clicks * rng.uniform(0.01, 0.04)
                value = purchases * rng.uniform(70, 110)
                # Meta restates the last 28 days: later syncs carry more conversions and a slightly different spend
                for k, share in ((0, 0.8), (2, 0.92), (9, 0.98), (27, 1.0)):
                    s = round(spend * (1 + (rng.uniform(-0.02, 0.02) if k else 0)), 2)
                    conv, val = round(purchases * share, 2), round(value * share, 2)
                    cpc = round(s / clicks, 4) if clicks else 0
                    self.emit(
                        "facebook_marketing_ads_insights",
                        base_sync + k * DAY,
                        f"{self.fb_account}\t{self.shop} ads\t{self.currency}\t{cid}\t{cname}\t{cid}0\t{cname} set"
                        f"\t{ad_id}\t{ad_name}\t{dstr}\t{dstr}\t{dstr}\t{self.day_str(base_sync + k * DAY)}"
                        f"\tOUTCOME_SALES\t{s:.2f}\t{impressions}\t{clicks}"
                        f"\t{int(clicks * 0.8)}\t{int(impressions * 0.7)}"
                        f"\t{cpc}\t{round(s / impressions * 1000, 4) if impressions else 0}"
                        f"\t{round(clicks / impressions * 100, 4) if impressions else 0}"
                        f'\t[{{"action_type":"link_click","value":{clicks}}},'
                        f'{{"action_type":"offsite_conversion.fb_pixel_purchase","value":{conv},"7d_click":{conv}}}]'
                        f'\t[{{"action_type":"offsite_conversion.fb_pixel_purchase","value":{val},"7d_click":{val}}}]',
                    )
