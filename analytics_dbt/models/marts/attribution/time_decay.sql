-- time_decay: one row per conversion x touch with this model's weight (see attribution_touches).
{{ config(materialized='view') }}
select
    merchant_id,
    order_id,
    touch_index,
    touch_count,
    session_id,
    touch_at,
    order_at,
    order_date,
    channel,
    campaign,
    time_decay_weight as weight,
    time_decay_revenue as attributed_revenue,
    net_revenue,
    currency,
    dbt_updated_at
from {{ ref('attribution_touches') }}
