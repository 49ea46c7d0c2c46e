-- depends_on: {{ source('raw', 'exchange_rates_rates') }}
-- One row per date x currency: units of `currency` per one unit of `base`.
{% set raw %}
select merchant_id, date as rate_date, base, rates, _airbyte_extracted_at, _load_id
from ({{ landed('exchange_rates_rates') }}) as r
{% endset %}
select
    d.merchant_id,
    d.rate_date,
    d.base as base_currency,
    upper(kv.key) as currency,
    kv.value::numeric as rate,
    d._airbyte_extracted_at,
    d._load_id
from ({{ dedupe(raw, 'merchant_id, rate_date, base', '_airbyte_extracted_at desc') }}) as d
{{ json_object_entries_join('d.rates', 'kv') }}
where kv.value::numeric > 0
