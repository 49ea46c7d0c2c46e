-- Email/SMS last-touch attribution, Klaviyo-style: an order is credited to the latest open or click of an
-- email or SMS by the same person (matched on email) before the order and inside that event's window
-- (vars email_open/email_click/sms_open/sms_click_window_hours). One row per attributed order.
{%- set windows = {
    ('email', 'opened'): var('email_open_window_hours') | int,
    ('email', 'clicked'): var('email_click_window_hours') | int,
    ('sms', 'opened'): var('sms_open_window_hours') | int,
    ('sms', 'clicked'): var('sms_click_window_hours') | int,
} %}
{%- set max_window = [var('email_open_window_hours') | int, var('email_click_window_hours') | int,
                      var('sms_open_window_hours') | int, var('sms_click_window_hours') | int] | max %}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'order_id'],
    incremental_strategy='delete+insert',
    indexes=[{'columns': ['merchant_id', 'order_id'], 'unique': True}, {'columns': ['dbt_updated_at']}],
    on_schema_change='fail',
    post_hook="delete from {{ this }} as t where not exists (select 1 from {{ ref('fct_orders') }} as o
        where o.merchant_id = t.merchant_id and o.order_id = t.order_id and o.is_revenue_order)",
) }}
-- Incremental: re-decide orders recomputed in fct_orders and orders that a newly landed open/click could
-- now be the last touch of; the post-hook drops orders that stopped being revenue orders.
with
{%- if is_incremental() %}
changed_touches as materialized (
    select merchant_id, email, min(occurred_at) as first_at, max(occurred_at) as last_at
    from {{ ref('fct_messages') }}
    where {{ changed_since_last_run() }}
        and event_type in ('opened', 'clicked') and email is not null
    group by 1, 2
),

affected as materialized (
    select merchant_id, order_id
    from {{ ref('fct_orders') }}
    where {{ changed_since_last_run() }}
    union
    select o.merchant_id, o.order_id
    from {{ ref('fct_orders') }} as o
    inner join changed_touches as t on t.merchant_id = o.merchant_id and t.email = o.email
    where o.order_at > t.first_at and o.order_at <= t.last_at + interval '{{ max_window }} hours'
),
{%- endif %}

orders as (
    select merchant_id, order_id, order_at, order_date, email, net_revenue, currency
    from {{ ref('fct_orders') }}
    where is_revenue_order and email is not null
    {%- if is_incremental() %}
        and (merchant_id, order_id) in (select merchant_id, order_id from affected)
    {%- endif %}
),

touches as (
    select merchant_id, email, occurred_at, provider, channel, event_type, message_type, campaign_or_flow_id,
        case
            {%- for key, hours in windows.items() %}
            when channel = '{{ key[0] }}' and event_type = '{{ key[1] }}' then interval '{{ hours }} hours'
            {%- endfor %}
        end as attribution_window
    from {{ ref('fct_messages') }}
    where event_type in ('opened', 'clicked') and email is not null and campaign_or_flow_id is not null
    {%- if is_incremental() %}
        -- through the email index: the touches of these few customers only
        and merchant_id = any(array(select distinct merchant_id from orders))
        and email = any(array(select email from orders))
        and (merchant_id, email) in (select merchant_id, email from orders)
    {%- endif %}
),

candidates as (
    select distinct on (o.merchant_id, o.order_id)
        o.merchant_id,
        o.order_id,
        o.order_at,
        o.order_date,
        o.net_revenue,
        o.currency,
        t.provider,
        t.channel,
        t.message_type,
        t.campaign_or_flow_id,
        t.event_type as touch_event_type,
        t.occurred_at as touch_at
    from orders as o
    inner join touches as t
        on t.merchant_id = o.merchant_id
        and t.email = o.email
        and t.occurred_at < o.order_at
        and t.occurred_at >= o.order_at - interval '{{ max_window }} hours'
        and t.occurred_at >= o.order_at - t.attribution_window
    order by o.merchant_id, o.order_id, t.occurred_at desc, (t.event_type = 'clicked') desc, t.provider, t.campaign_or_flow_id
)

select candidates.*, now() as dbt_updated_at
from candidates
