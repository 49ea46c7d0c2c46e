-- Merchant x date x channel: ad spend, clicks, impressions (ad platforms, shop currency), sessions, and
-- attributed revenue under each attribution model, with ROAS = attributed revenue / spend.
-- Unique index on the grain, led by (merchant_id, date_day), for the dashboards' per-merchant date ranges.
{{ config(post_hook=["{{ ensure_index(['merchant_id', 'date_day', 'channel'], unique=true) }}"]) }}
{%- set models = ['first_touch', 'last_touch', 'multi_touch_linear', 'position_based', 'time_decay'] %}
with spend as (
    select merchant_id, date_day, channel, sum(spend) as spend, sum(clicks) as clicks, sum(impressions) as impressions,
        sum(conversions_value) as platform_conversions_value
    from {{ ref('fct_ad_spend_daily') }}
    group by 1, 2, 3
),

sessions as (
    select merchant_id, session_date as date_day, channel, count(*) as sessions
    from {{ ref('fct_sessions') }}
    group by 1, 2, 3
),

attributed as (
    select
        merchant_id,
        date_day,
        channel
        {%- for m in models %},
        sum(attributed_revenue) filter (where attribution_model = '{{ m }}') as {{ m }}_revenue
        {%- endfor %}
    from {{ ref('fct_attribution_daily') }}
    group by 1, 2, 3
),

keys as (
    select merchant_id, date_day, channel from spend
    union
    select merchant_id, date_day, channel from sessions
    union
    select merchant_id, date_day, channel from attributed
)

select
    k.merchant_id,
    k.date_day,
    k.channel,
    coalesce(s.spend, 0) as spend,
    coalesce(s.clicks, 0) as clicks,
    coalesce(s.impressions, 0) as impressions,
    coalesce(s.platform_conversions_value, 0) as platform_conversions_value,
    coalesce(x.sessions, 0) as sessions
    {%- for m in models %},
    coalesce(a.{{ m }}_revenue, 0) as {{ m }}_revenue,
    case when s.spend > 0 then round(coalesce(a.{{ m }}_revenue, 0) / s.spend, 4) end as {{ m }}_roas
    {%- endfor %},
    m.currency,
    now() as dbt_updated_at
from keys as k
inner join {{ ref('dim_merchants') }} as m on m.merchant_id = k.merchant_id
left join spend as s on s.merchant_id = k.merchant_id and s.date_day = k.date_day and s.channel = k.channel
left join sessions as x on x.merchant_id = k.merchant_id and x.date_day = k.date_day and x.channel = k.channel
left join attributed as a on a.merchant_id = k.merchant_id and a.date_day = k.date_day and a.channel = k.channel
