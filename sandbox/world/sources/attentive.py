"""Attentive's webhook events (no bulk read API: the demo writes them as Fivetran lands them): SMS and
email messages with their funnels, and subscriptions.
"""

from __future__ import annotations

import datetime as dt

from sandbox.world.columns import declare

MESSAGE_COLUMNS = declare(
    __name__,
    {"attentive_sms_sent": 15, "attentive_email_sent": 17, "attentive_email_opened": 18},
    (
        "type",
        "timestamp",
        "company_id",
        "company_display_name",
        "message_id",
        "message_name",
        "message_type",
        "message_channel",
        "message_text",
        "subscriber_external_id",
        "subscriber_email",
        "subscriber_phone",
    ),
)
CLICK_COLUMNS = declare(
    __name__,
    {"attentive_sms_message_link_click": 16, "attentive_email_message_link_click": 19},
    (*MESSAGE_COLUMNS, "message_link_click_url"),
)
SUBSCRIPTION_COLUMNS = declare(
    __name__,
    {"attentive_subscribed": 20, "attentive_unsubscribed": 21},
    (
        "type",
        "timestamp",
        "company_id",
        "subscription_type",
        "subscription_channel",
        "creative_name",
        "creative_type",
        "subscriber_external_id",
        "subscriber_email",
        "subscriber_phone",
    ),
)


class AttentiveEmitter:
    """SMS campaigns and journeys, the welcome email, subscriptions."""

    def attentive(
        self,
        table: str,
        p: int,
        t: int,
        msg_id: str,
        msg_name: str,
        msg_type: str,
        channel: str,
        extra: str | None = None,
    ) -> None:
        fields = (
            f"{table.removeprefix('attentive_')}\t{self.ts(t)}\tC{self.mh % 100_000}\t{self.shop}\t{msg_id}"
            f"\t{msg_name}\t{msg_type}\t{channel}\t{msg_name}: new drop inside\tS{p:09d}\t{self.email(p)}"
            f"\t+1555{p:07d}"
        )
        if extra is not None:
            fields += f"\t{extra}"
        self.emit(table, t + 2, fields)

    def attentive_subscription(self, table: str, p: int, t: int) -> None:
        self.emit(
            table,
            t + 2,
            f"{table.removeprefix('attentive_')}\t{self.ts(t)}\tC{self.mh % 100_000}\tMARKETING\tTEXT\t"
            f"Spring popup\tPOPUP\tS{p:09d}\t{self.email(p)}\t+1555{p:07d}",
        )

    def sms_campaign(self, d: dt.date, t: int) -> None:
        rng = self.rng
        size = min(len(self.sms_subscribers), 4 * self.O)
        offset = rng.randrange(max(1, len(self.sms_subscribers) - size + 1))
        name = f"SMS drop {d.isoformat()}"
        mid = f"AS{self.mh % 1000:03d}{d.toordinal()}"
        for p in self.sms_subscribers[offset : offset + size]:
            ts = t + int(rng.random() * 300)
            self.attentive("attentive_sms_sent", p, ts, mid, name, "CAMPAIGN", "TEXT")
            r = rng.random()
            if r < 0.09:
                tc = ts + rng.randrange(30, 7200)
                self.attentive(
                    "attentive_sms_message_link_click",
                    p,
                    tc,
                    mid,
                    name,
                    "CAMPAIGN",
                    "TEXT",
                    f"https://{self.shop}/?utm_source=attentive",
                )
                self.session(p, tc + 2, "sms", identified=False, campaign=f"sms_{d.isoformat()}")
            elif r > 0.988:
                self.attentive_subscription("attentive_unsubscribed", p, ts + rng.randrange(30, 3600))
