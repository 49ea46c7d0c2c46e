"""What every source's emitter shares: COPY's NULL, the day, the catalogue and Klaviyo's metrics and flows."""

from __future__ import annotations

N = "\\N"  # NULL in COPY text format
DAY = 86400

PRODUCTS = [
    (7_000_000_000 + i, f"Product {i:02d}", price)
    for i, price in enumerate(
        [
            12,
            15,
            18,
            19,
            22,
            24,
            25,
            28,
            29,
            32,
            35,
            38,
            39,
            42,
            45,
            48,
            49,
            55,
            59,
            65,
            69,
            75,
            79,
            85,
            89,
            95,
            99,
            110,
            120,
            135,
        ]
    )
]
KLAVIYO_METRICS = [
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Bounced Email",
    "Marked Email as Spam",
    "Unsubscribed",
    "Placed Order",
    "Ordered Product",
    "Viewed Product",
]
KLAVIYO_FLOWS = [  # (name, trigger, number of messages, delays in hours)
    ("Welcome Series", "Added to List", (0, 48, 120)),
    ("Abandoned Cart", "Metric", (2, 26)),
    ("Post-Purchase", "Metric", (24,)),
    ("Browse Abandonment", "Metric", (1,)),
]
