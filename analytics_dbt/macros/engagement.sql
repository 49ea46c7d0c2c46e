{#- Merchant x local date x provider x campaign-or-flow engagement for one channel ('email' or 'sms').
    Event counts are on the event's local date, attributed orders on the order's local date. -#}
{% macro engagement_mart(channel) %}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'date_day'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
) }}
{#- Incremental: rebuild whole days touched by recomputed messages, orders or attributions. -#}
{%- set changed_since -%}
(select coalesce(max(dbt_updated_at), '-infinity'::timestamptz) from {{ this }})
{%- endset %}
with
{%- if is_incremental() %}
affected_days as (
    select merchant_id, event_date as date_day from {{ ref('fct_messages') }}
    where dbt_updated_at > {{ changed_since }} and channel = '{{ channel }}'
    union
    select merchant_id, order_date from {{ ref('fct_orders') }} where dbt_updated_at > {{ changed_since }}
    union
    select merchant_id, order_date from {{ ref('message_attributed_orders') }} where dbt_updated_at > {{ changed_since }}
),
{%- endif %}

events as (
    select
        merchant_id,
        event_date as date_day,
        provider,
        coalesce(campaign_or_flow_id, '(none)') as campaign_or_flow_id,
        max(message_type) as message_type,
        count(*) filter (where event_type in ('delivered', 'bounced')) as sends,
        count(*) filter (where event_type = 'delivered') as delivered,
        count(*) filter (where event_type = 'opened') as opens,
        count(distinct recipient_id) filter (where event_type = 'opened') as unique_opens,
        count(*) filter (where event_type = 'clicked') as clicks,
        count(distinct recipient_id) filter (where event_type = 'clicked') as unique_clicks,
        count(*) filter (where event_type = 'bounced') as bounces,
        count(*) filter (where event_type = 'unsubscribed') as unsubscribes,
        count(*) filter (where event_type = 'spam_complaint') as spam_complaints
    from {{ ref('fct_messages') }}
    where channel = '{{ channel }}'
    {%- if is_incremental() %}
        and (merchant_id, event_date) in (select merchant_id, date_day from affected_days)
    {%- endif %}
    group by 1, 2, 3, 4
),

orders as (
    select
        merchant_id,
        order_date as date_day,
        provider,
        campaign_or_flow_id,
        max(message_type) as message_type,
        count(*) as attributed_orders,
        sum(net_revenue) as attributed_revenue
    from {{ ref('message_attributed_orders') }}
    where channel = '{{ channel }}'
    {%- if is_incremental() %}
        and (merchant_id, order_date) in (select merchant_id, date_day from affected_days)
    {%- endif %}
    group by 1, 2, 3, 4
),

joined as (
    select
        coalesce(e.merchant_id, o.merchant_id) as merchant_id,
        coalesce(e.date_day, o.date_day) as date_day,
        coalesce(e.provider, o.provider) as provider,
        coalesce(e.campaign_or_flow_id, o.campaign_or_flow_id) as campaign_or_flow_id,
        coalesce(e.message_type, o.message_type) as message_type,
        coalesce(e.sends, 0) as sends,
        coalesce(e.delivered, 0) as delivered,
        coalesce(e.opens, 0) as opens,
        coalesce(e.unique_opens, 0) as unique_opens,
        coalesce(e.clicks, 0) as clicks,
        coalesce(e.unique_clicks, 0) as unique_clicks,
        coalesce(e.bounces, 0) as bounces,
        coalesce(e.unsubscribes, 0) as unsubscribes,
        coalesce(e.spam_complaints, 0) as spam_complaints,
        coalesce(o.attributed_orders, 0) as attributed_orders,
        coalesce(o.attributed_revenue, 0) as attributed_revenue
    from events as e
    full outer join orders as o
        on o.merchant_id = e.merchant_id and o.date_day = e.date_day and o.provider = e.provider
        and o.campaign_or_flow_id = e.campaign_or_flow_id
)

select
    j.merchant_id,
    j.date_day,
    j.provider,
    '{{ channel }}' as channel,
    j.campaign_or_flow_id,
    j.message_type,
    n.campaign_or_flow_name,
    j.sends,
    j.delivered,
    j.opens,
    j.unique_opens,
    j.clicks,
    j.unique_clicks,
    j.bounces,
    j.unsubscribes,
    j.spam_complaints,
    j.attributed_orders,
    j.attributed_revenue,
    m.currency,
    now() as dbt_updated_at
from joined as j
inner join {{ ref('dim_merchants') }} as m on m.merchant_id = j.merchant_id
left join {{ ref('dim_messaging_campaigns') }} as n
    on n.merchant_id = j.merchant_id and n.provider = j.provider and n.campaign_or_flow_id = j.campaign_or_flow_id
{% endmacro %}
