"""The storefront's sessions (our pixel's table): UTM parameters and click ids of every visit."""

from __future__ import annotations

from sandbox.world.columns import declare
from sandbox.world.sources.common import N

SESSION_COLUMNS = declare(
    __name__,
    {"web_sessions": 22},
    (
        "session_id",
        "anonymous_id",
        "customer_id",
        "email",
        "started_at",
        "ended_at",
        "landing_page",
        "referrer",
        "utm_source",
        "utm_medium",
        "utm_campaign",
        "utm_content",
        "utm_term",
        "fbclid",
        "gclid",
        "device",
        "shop_url",
    ),
)


class WebSessionsEmitter:
    """A session per touch of a journey, and browsing that does not convert."""

    def session(
        self,
        p: int | None,
        t: int,
        channel: str,
        *,
        identified: bool,
        anon: str | None = None,
        campaign: str | None = None,
    ) -> None:
        rng = self.rng
        sid = f"{self.session_prefix}{self.seq['web_sessions'] + 1:011d}"
        if anon is None:
            anon = self.people[p][0] if p is not None else f"x{self.mh % 100_000:05d}{rng.getrandbits(40):012x}"
        cust = email = N
        if identified and p is not None:
            cust = str(self.people[p][1])
            email = self.email(p)
        src = med = camp = content = fbclid = gclid = N
        referrer = N
        landing = "/"
        if channel == "paid_social":
            _, cname, ads, _ = self.fb_campaigns[int(rng.random() * len(self.fb_campaigns))]
            src, med, camp, content = "facebook", "paid_social", cname, ads[int(rng.random() * 6)][0]
            fbclid = f"IwAR{rng.getrandbits(64):016x}"
            referrer = "https://l.facebook.com/"
            landing = f"/products/p{int(rng.random() * 30)}"
        elif channel == "paid_search":
            _, gname, _, _ = self.g_campaigns[int(rng.random() * len(self.g_campaigns))]
            src, med, camp = "google", "cpc", gname
            gclid = f"Cj0K{rng.getrandbits(64):016x}"
            referrer = "https://www.google.com/"
            landing = f"/collections/c{int(rng.random() * 8)}"
        elif channel == "organic_search":
            referrer = ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/")[
                int(rng.random() * 3)
            ]
        elif channel == "email":
            src, med, camp = "klaviyo", "email", campaign or "newsletter"
        elif channel == "sms":
            src, med, camp = "attentive", "sms", campaign or "sms_campaign"
        elif channel == "referral":
            referrer = (
                "https://www.reddit.com/",
                "https://blog.example.org/review",
                "https://www.buzzfeed.com/",
            )[int(rng.random() * 3)]
        elif channel == "organic_social":
            referrer = ("https://www.instagram.com/", "https://www.tiktok.com/", "https://l.facebook.com/")[
                int(rng.random() * 3)
            ]
        device = ("mobile", "mobile", "desktop", "tablet")[int(rng.random() * 4)]
        self.emit(
            "web_sessions",
            self.sync_after(t),
            f"{sid}\t{anon}\t{cust}\t{email}\t{self.ts(t)}\t{self.ts(t + 60 + int(rng.random() * 900))}"
            f"\thttps://{self.shop}{landing}\t{referrer}\t{src}\t{med}\t{camp}\t{content}\t{N}\t{fbclid}\t{gclid}"
            f"\t{device}\t{self.shop}",
        )
