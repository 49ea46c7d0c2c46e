-- The active merchants as passed by run_dbt (the app's Merchant table is authoritative for timezone/currency).
{%- set merchants = var('merchants', []) %}
{%- if merchants | length == 0 %}
select null::integer as merchant_id, null::text as merchant_key, null::text as timezone, null::text as currency,
    now() as dbt_updated_at
where false
{%- else %}
select merchant_id, merchant_key, timezone, currency, now() as dbt_updated_at
from (values
{%- for m in merchants %}
    ({{ m['id'] | int }}, {{ sql_str(m['key']) }}, {{ sql_str(m['timezone']) }}, {{ sql_str(m['currency'] | upper) }})
    {%- if not loop.last %},{% endif %}
{%- endfor %}
) as v (merchant_id, merchant_key, timezone, currency)
{%- endif %}
