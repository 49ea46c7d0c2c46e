-- Conversion x touch. A conversion is a revenue order; its touches are the customer's sessions that started
-- strictly before the order and at most attribution_lookback_days earlier. An order without any such
-- session gets one 'unattributed' touch (session_id null), so every model's weights sum to 1 per order and
-- attributed revenue always adds up to net revenue. Revenue is split in whole cents by cumulative rounding
-- (touch i gets round(net x cumulative weight to i) - round(net x cumulative weight to i - 1)): each touch is
-- within a cent of weight x net revenue and the touches add up exactly, so sums over any rows (days,
-- channels, months) lose no money to rounding.
-- Incremental: recompute the whole path of every order whose attribution inputs changed (the order row,
-- or a session of its customer inside its lookback, or a session it was credited to, changed or gone); the
-- post-hook drops orders that stopped being revenue orders (fct_orders keeps every order it has seen).
{%- set lookback = var('attribution_lookback_days') | int %}
{%- set half_life = var('time_decay_half_life_days') | float %}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'order_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['merchant_id', 'order_id']}, {'columns': ['merchant_id', 'session_id']}],
    post_hook=[
        "delete from {{ this }} as t using {{ ref('fct_orders') }} as o
            where o.merchant_id = t.merchant_id and o.order_id = t.order_id and not o.is_revenue_order",
        "{{ ensure_index(['dbt_updated_at']) }}",
    ],
) }}
with
{%- if is_incremental() %}
changed_sessions as (
    select merchant_id, session_id, customer_id, started_at
    from {{ ref('fct_sessions') }}
    where {{ changed_since_last_run() }}
),

-- fct_orders rewrites only orders whose row changed, so its dbt_updated_at marks them
affected as (
    select merchant_id, order_id
    from {{ ref('fct_orders') }}
    where {{ changed_since_last_run() }}
    union
    select o.merchant_id, o.order_id
    from {{ ref('fct_orders') }} as o
    inner join changed_sessions as s
        on s.merchant_id = o.merchant_id and s.customer_id = o.customer_id
        and s.started_at < o.order_at and s.started_at >= o.order_at - interval '{{ lookback }} days'
    union
    select t.merchant_id, t.order_id
    from {{ this }} as t
    inner join changed_sessions as s on s.merchant_id = t.merchant_id and s.session_id = t.session_id
    union
    -- orders credited to a session that is gone: web sessions merge when a late pixel event joins two of them,
    -- and a store's legacy web_sessions go when its first pixel events arrive (fct_sessions' post-hook); either
    -- way the store has changed sessions this run
    select t.merchant_id, t.order_id
    from {{ this }} as t
    where t.session_id is not null
        and t.merchant_id = any(array(select distinct merchant_id from changed_sessions))
        and not exists (
            select 1 from {{ ref('fct_sessions') }} as s
            where s.merchant_id = t.merchant_id and s.session_id = t.session_id
        )
),
{%- endif %}

conversions as (
    select
        merchant_id, order_id, customer_id, order_at, order_date, net_revenue, currency, is_revenue_order,
        md5(row(customer_id, order_at, order_date, net_revenue, currency, is_revenue_order)::text) as order_hash
    from {{ ref('fct_orders') }}
    where is_revenue_order
    {%- if is_incremental() %}
        and (merchant_id, order_id) in (select merchant_id, order_id from affected)
    {%- endif %}
),

-- Each conversion with its touches: a left join, so a conversion without a session in its lookback comes out
-- once with no session — its 'unattributed' touch. (One pass, never a join of the conversions with their own
-- touches: PostgreSQL cannot know how many conversions a batch holds, and such a join planned for one
-- conversion compares every conversion with every touch when the batch is a store's whole history.)
indexed as (
    select
        c.merchant_id,
        c.order_id,
        s.session_id,
        s.started_at as touch_at,
        case when s.session_id is null then 'unattributed' else s.channel end as channel,
        s.campaign,
        c.customer_id,
        c.order_at,
        c.order_date,
        c.net_revenue,
        c.currency,
        c.order_hash,
        row_number() over (partition by c.merchant_id, c.order_id order by s.started_at, s.session_id) as touch_index,
        count(*) over (partition by c.merchant_id, c.order_id) as touch_count,
        case when s.session_id is null then 1.0
            else power(0.5, extract(epoch from (c.order_at - s.started_at)) / 86400.0 / {{ half_life }})
        end as decay
    from conversions as c
    left join {{ ref('fct_sessions') }} as s
        on s.merchant_id = c.merchant_id
        and s.customer_id = c.customer_id
        and s.started_at < c.order_at
        and s.started_at >= c.order_at - interval '{{ lookback }} days'
),

weighted as (
    select
        indexed.*,
        case when touch_index = 1 then 1.0 else 0.0 end as first_touch_weight,
        case when touch_index = touch_count then 1.0 else 0.0 end as last_touch_weight,
        1.0 / touch_count as linear_weight,
        case
            when touch_count = 1 then 1.0
            when touch_count = 2 then 0.5
            when touch_index in (1, touch_count) then 0.4
            else 0.2 / (touch_count - 2)
        end as position_based_weight,
        decay / sum(decay) over (partition by merchant_id, order_id) as time_decay_weight
    from indexed
)

select
    merchant_id,
    order_id,
    customer_id,
    order_at,
    order_date,
    session_id,
    touch_at,
    channel,
    campaign,
    touch_index,
    touch_count,
    net_revenue,
    currency,
    first_touch_weight::numeric as first_touch_weight,
    last_touch_weight::numeric as last_touch_weight,
    linear_weight::numeric as linear_weight,
    position_based_weight::numeric as position_based_weight,
    time_decay_weight::numeric as time_decay_weight,
    {%- for col in ['first_touch', 'last_touch', 'linear', 'position_based', 'time_decay'] %}
    {{ cents_share('net_revenue', col ~ '_weight') }} as {{ col }}_revenue,
    {%- endfor %}
    order_hash,
    now() as dbt_updated_at
from weighted
