"""The exchange-rates source: EUR-based rates, published on business days."""

from __future__ import annotations

import datetime as dt

from sandbox.world.columns import declare

RATE_COLUMNS = declare(__name__, {"exchange_rates_rates": 9}, ("date", "base", "timestamp", "rates"))


class ExchangeRatesEmitter:
    """EUR-based daily rates at 16:00 local time, business days only."""

    def exchange_rates(self, d: dt.date, dstr: str) -> None:
        rng = self.rng
        eur_usd = 1.08 + 0.04 * ((d.toordinal() % 97) / 97 - 0.5) + rng.uniform(-0.005, 0.005)
        rates = {"EUR": 1.0, "USD": eur_usd, "GBP": 0.86, "CAD": eur_usd * 1.36, "AUD": eur_usd * 1.52}
        body = ",".join(f'"{k}":{v:.6f}' for k, v in rates.items())
        t = self.midnight(d) + 16 * 3600
        self.emit("exchange_rates_rates", self.sync_after(t), f"{dstr}\tEUR\t{t}\t{{{body}}}")
