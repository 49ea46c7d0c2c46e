-- depends_on: {{ ref('fct_orders') }}
-- Merchant x order local date x channel x campaign x model: attributed orders (sum of weights) and revenue.
-- Incremental: rebuild the order dates of recomputed touches and recomputed orders.
-- Unique index on the grain, led by (merchant_id, attribution_model, date_day): dashboards read one merchant's
-- model over a date range.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'date_day'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=["{{ ensure_index(['merchant_id', 'attribution_model', 'date_day', 'channel', 'campaign'], unique=true) }}"],
) }}
with
{%- if is_incremental() %}
affected_days as (
    select merchant_id, order_date from {{ ref('attribution_touches') }}
    where {{ changed_since_last_run() }}
    union
    select merchant_id, order_date from {{ ref('fct_orders') }}
    where {{ changed_since_last_run() }}
),
{%- endif %}

touches as (
    select * from {{ ref('attribution_touches') }}
    {%- if is_incremental() %}
    where (merchant_id, order_date) in (select merchant_id, order_date from affected_days)
    {%- endif %}
),

by_model as (
    {%- set models = [('first_touch', 'first_touch'), ('last_touch', 'last_touch'), ('multi_touch_linear', 'linear'),
                      ('position_based', 'position_based'), ('time_decay', 'time_decay')] %}
    {%- for name, col in models %}
    select
        merchant_id,
        order_date as date_day,
        channel,
        coalesce(campaign, '(none)') as campaign,
        '{{ name }}' as attribution_model,
        sum({{ col }}_weight) as attributed_orders,
        sum({{ col }}_revenue) as attributed_revenue,
        max(currency) as currency
    from touches
    group by 1, 2, 3, 4
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
)

select
    merchant_id,
    date_day,
    channel,
    campaign,
    attribution_model,
    round(attributed_orders, 6) as attributed_orders,
    round(attributed_revenue, 2) as attributed_revenue,
    currency,
    now() as dbt_updated_at
from by_model
