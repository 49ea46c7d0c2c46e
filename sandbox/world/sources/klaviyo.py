"""Klaviyo's streams: metrics, flows, campaigns, profiles and events (every message's funnel).

The email list is Klaviyo's; the SMS subscribers Attentive messages are drawn from it.
"""

from __future__ import annotations

import datetime as dt

from sandbox.world.columns import declare
from sandbox.world.sources.common import DAY, KLAVIYO_FLOWS, KLAVIYO_METRICS, N

# The JSON:API shape of every Klaviyo stream; the last column is each stream's cursor.
EVENT_COLUMNS = declare(
    __name__, {"klaviyo_events": 10}, ("type", "id", "attributes", "links", "relationships", "datetime")
)
UPDATED_COLUMNS = declare(
    __name__,
    {"klaviyo_metrics": 11, "klaviyo_flows": 13, "klaviyo_profiles": 14},
    ("type", "id", "attributes", "links", "relationships", "updated"),
)
CAMPAIGN_COLUMNS = declare(
    __name__, {"klaviyo_campaigns": 12}, ("type", "id", "attributes", "links", "relationships", "updated_at")
)


class KlaviyoEmitter:
    """Profiles, flows and campaigns, and every message's funnel as events."""

    def setup_klaviyo(self, created: str, first_sync: int) -> None:
        # Klaviyo metrics and flows
        self.metric_ids = {}
        for i, m in enumerate(KLAVIYO_METRICS):
            mid = f"M{self.mh % 10_000:04d}{i:02d}"
            self.metric_ids[m] = mid
            integ = "Shopify" if m in ("Placed Order", "Ordered Product", "Viewed Product") else "Klaviyo"
            self.emit(
                "klaviyo_metrics",
                first_sync,
                f'metric\t{mid}\t{{"name":"{m}","created":"{created}","updated":"{created}",'
                f'"integration":{{"name":"{integ}","category":"{"eCommerce" if integ == "Shopify" else "Internal"}"}}}}'
                f'\t{{"self":"https://a.klaviyo.com/api/metrics/{mid}/"}}\t{{}}\t{created}',
            )
        self.rel_prefix = {
            m: f'{{"metric":{{"data":{{"type":"metric","id":"{mid}"}}}},"profile":{{"data":{{"type":"profile","id":"'
            for m, mid in self.metric_ids.items()
        }
        self.flows = []
        for i, (fname, trigger, delays) in enumerate(KLAVIYO_FLOWS):
            fid = f"F{self.mh % 10_000:04d}{i:02d}"
            msgs = [f"{fid}M{j}" for j in range(len(delays))]
            self.flows.append((fid, fname, delays, msgs))
            self.emit(
                "klaviyo_flows",
                first_sync,
                f'flow\t{fid}\t{{"name":"{fname}","status":"live","archived":false,"trigger_type":"{trigger}",'
                f'"created":"{created}","updated":"{created}"}}\t{N}\t{{}}\t{created}',
            )
        self.flow_by_name = {f[1]: f for f in self.flows}

    def setup_lists(self, t0: int, first_sync: int) -> None:
        rng = self.rng
        # Initial email list (Klaviyo) and SMS list (Attentive)
        for _ in range(20 * self.O):
            p = self.new_person()
            self.subscribers.append(p)
            if rng.random() < 0.2:
                self.sms_subscribers.append(p)
            self.emit_profile(p, t0 + int(rng.random() * (400 * DAY)), ext=first_sync)

    def new_person(self) -> int:
        idx = len(self.people)
        self.people.append([f"a{self.mh % 100_000:05d}{idx:08d}", None, 0, 0.0])
        return idx

    def profile_id(self, p: int) -> str:
        return f"{self.profile_prefix}{p:018d}"

    def email(self, p: int) -> str:
        return f"shopper{p}@example.com"

    def emit_profile(self, p: int, t: int, ext: int | None = None) -> None:
        pid = self.profile_id(p)
        when = self.ts(t)
        self.emit(
            "klaviyo_profiles",
            ext or self.sync_after(t),
            f'profile\t{pid}\t{{"email":"{self.email(p)}","phone_number":"+1555{p:07d}","created":"{when}",'
            f'"updated":"{when}","location":{{"country":"United States"}}}}'
            f'\t{{"self":"https://a.klaviyo.com/api/profiles/{pid}/"}}\t{{}}\t{when}',
        )

    def kev(self, metric: str, p: int, t: int, props: str) -> None:
        ext = self.sync_after(t)
        if not (self.lo - 2 * DAY <= ext < self.hi):  # outside the window: only advance the counters
            self.seq["klaviyo_events"] += 1
            if self.rng.random() < 0.01:
                self.seq["klaviyo_events"] += 1
            return
        fields = (
            f'event\t{self.event_prefix}{self.seq["klaviyo_events"] + 1:012d}\t{{"timestamp":{t},'
            f'"event_properties":{props}}}\t{N}\t{self.rel_prefix[metric]}{self.profile_id(p)}"}}}}}}\t{self.ts(t)}'
        )
        self.emit("klaviyo_events", ext, fields)
        if self.rng.random() < 0.01:  # re-emitted by an overlapping incremental sync
            self.emit("klaviyo_events", ext + 3600, fields)

    def message_funnel(self, p: int, t: int, props: str, open_rate: float, click_rate: float) -> int | None:
        """Received -> (bounce) -> opened (maybe twice) -> clicked; returns the click time."""
        rng = self.rng
        r = rng.random()
        if r < 0.008:
            self.kev("Bounced Email", p, t + 5, props)
            return None
        self.kev("Received Email", p, t + 5, props)
        if r > 1 - 0.0003:
            self.kev("Marked Email as Spam", p, t + 3600, props)
        if rng.random() >= open_rate:
            return None
        t_open = t + 60 + int(rng.expovariate(1 / 10800))
        self.kev("Opened Email", p, t_open, props)
        if rng.random() < 0.3:
            self.kev("Opened Email", p, t_open + rng.randrange(600, 86400), props)
        if rng.random() < 0.004:
            self.kev("Unsubscribed", p, t_open + 30, props)
        if rng.random() >= click_rate:
            return None
        t_click = t_open + rng.randrange(5, 300)
        self.kev("Clicked Email", p, t_click, props)
        if rng.random() < 0.2:
            self.kev("Clicked Email", p, t_click + rng.randrange(30, 900), props)
        return t_click

    def flow_props(self, flow_name: str, step: int) -> str:
        fid, _, _, msgs = self.flow_by_name[flow_name]
        return f'{{"$flow":"{fid}","$message":"{msgs[step]}","Subject":"{flow_name} #{step + 1}"}}'

    def flow(self, flow_name: str, p: int, t: int, open_rate: float = 0.45, click_rate: float = 0.12) -> None:
        _, _, delays, _ = self.flow_by_name[flow_name]
        for step, delay in enumerate(delays):
            click = self.message_funnel(p, t + delay * 3600, self.flow_props(flow_name, step), open_rate, click_rate)
            if click is not None and self.rng.random() < 0.6:
                self.session(p, click + 2, "email", identified=False, campaign=flow_name.lower().replace(" ", "_"))

    def email_campaign(self, d: dt.date, t: int) -> None:
        rng = self.rng
        cid = f"C{self.mh % 10_000:04d}{d.toordinal()}"
        cname = f"Newsletter {d.isoformat()}"
        when = self.ts(t)
        self.emit(
            "klaviyo_campaigns",
            self.sync_after(t + 3 * 3600),
            f'campaign\t{cid}\t{{"name":"{cname}","status":"Sent","archived":false,"channel":"email",'
            f'"send_time":"{when}","scheduled_at":"{self.ts(t - DAY)}","created_at":"{self.ts(t - 2 * DAY)}",'
            f'"updated_at":"{self.ts(t + 3 * 3600)}"}}\t{N}\t{{}}\t{self.ts(t + 3 * 3600)}',
        )
        props = f'{{"$message":"{cid}","Campaign Name":"{cname}","Subject":"{cname}"}}'
        size = min(len(self.subscribers), 20 * self.O)
        offset = rng.randrange(max(1, len(self.subscribers) - size + 1))
        slug = f"newsletter_{d.isoformat()}"
        for p in self.subscribers[offset : offset + size]:
            click = self.message_funnel(p, t + int(rng.random() * 600), props, 0.32, 0.1)
            if click is not None and rng.random() < 0.7:
                self.session(p, click + 2, "email", identified=False, campaign=slug)
