-- depends_on: {{ ref('fct_orders') }}
{#- Merchant x local date x provider x campaign-or-flow engagement by channel ('email' or 'sms').
    Deliveries, bounces, unsubscribes and spam complaints count on the event's local date. Opens and clicks
    count on the local date of the send they belong to: the recipient's latest delivery of the same message
    (Klaviyo $message / Attentive message; else the campaign-or-flow) at or before the event, in that send's
    campaign-or-flow. Unique opens / clicks are distinct recipients of that day's sends who opened / clicked
    (email: a click implies an open), so they never exceed delivered. An open or click with no earlier
    delivery (sent before the data starts) counts in opens / clicks on its own date, never as unique.
    Attributed orders count on the order's local date. A row exists when at least one of its events or
    orders counts (events that count in no column, e.g. SMS subscriptions, make none). -#}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'date_day'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook=["{{ ensure_index(['merchant_id', 'date_day', 'channel', 'provider', 'campaign_or_flow_id'], unique=true) }}"],
) }}
{%- set changed_since -%}
(select coalesce(max(dbt_updated_at), '-infinity'::timestamptz) from {{ this }})
{%- endset %}
with messages as {% if is_incremental() %}not materialized {% endif %}(
    select
        merchant_id,
        channel,
        provider,
        event_type,
        message_event_id,
        occurred_at,
        event_date,
        message_type,
        coalesce(campaign_or_flow_id, '(none)') as campaign_or_flow_id,
        coalesce(message_id, campaign_or_flow_id, '(none)') as send_key,
        recipient_id,
        dbt_updated_at
    from {{ ref('fct_messages') }}
),

{%- if is_incremental() %}

changed as materialized (
    select merchant_id, channel, provider, recipient_id, send_key, event_date
    from messages
    where {{ changed_since_last_run() }}
),

-- Rebuild whole days touched by recomputed messages, orders or attributions. Message days: the dates of the
-- recomputed events, and the dates of the sends their opens/clicks count on. A recomputed delivery can also
-- take an existing open/click over from an earlier send (or give a send to one that had none): both sides'
-- days are rebuilt. Along each (recipient, message) in time order, an open/click's send is its latest delivery
-- (now) or its latest delivery not recomputed (as of the last run); local dates never decrease with time, so
-- the latest delivery's date is the largest date so far.
changed_keys as materialized (
    select distinct merchant_id, channel, provider, recipient_id, send_key
    from changed
    where recipient_id is not null
),

key_events as materialized (
    select
        merchant_id,
        channel,
        provider,
        recipient_id,
        send_key,
        event_type,
        event_date,
        occurred_at,
        message_event_id,
        dbt_updated_at > {{ changed_since }} as is_changed,
        count(*) filter (where event_type = 'delivered') over key_time as send_no,
        max(event_date) filter (where event_type = 'delivered') over key_time as send_date,
        max(event_date) filter (where event_type = 'delivered' and dbt_updated_at <= {{ changed_since }}) over key_time
            as old_send_date
    from messages
    where event_type in ('delivered', 'opened', 'clicked')
        and merchant_id = any(array(select distinct merchant_id from changed_keys))
        and recipient_id = any(array(select recipient_id from changed_keys))
        and (merchant_id, channel, provider, recipient_id, send_key) in (
            select merchant_id, channel, provider, recipient_id, send_key from changed_keys)
    window key_time as (
        partition by merchant_id, channel, provider, recipient_id, send_key
        order by occurred_at, event_type <> 'delivered', message_event_id
    )
),

key_sends as (
    select
        *,
        -- the number of the latest delivery not recomputed: differs from send_no when the latest is recomputed
        max(case when event_type = 'delivered' and not is_changed then send_no end) over (
            partition by merchant_id, channel, provider, recipient_id, send_key
            order by occurred_at, event_type <> 'delivered', message_event_id
        ) as old_send_no
    from key_events
),

moved_days as (
    select merchant_id, send_date as event_date
    from key_sends
    where event_type <> 'delivered' and is_changed and send_date is not null
    union
    select merchant_id, old_send_date
    from key_sends
    where event_type <> 'delivered' and not is_changed and old_send_no is not null and send_no <> old_send_no
    union
    select merchant_id, event_date
    from key_sends
    where event_type <> 'delivered' and not is_changed and old_send_no is null and send_no > 0
),

message_days as materialized (
    select merchant_id, event_date as date_day from changed
    union
    select merchant_id, event_date from moved_days
),

-- Days where only orders or their attribution changed: their engagement counts are kept as they are.
affected_days as materialized (
    select merchant_id, date_day from message_days
    union
    select merchant_id, order_date from {{ ref('fct_orders') }} where {{ changed_since_last_run() }}
    union
    select merchant_id, order_date from {{ ref('message_attributed_orders') }} where {{ changed_since_last_run() }}
),

-- Only the events that can count on a message day: every event dated on one, and every delivery, open and
-- click of a (recipient, message) with a delivery, open or click dated on one (so each open/click is matched
-- against all deliveries of its message, exactly as in a full build).
-- (`= any(array(...))` lets PostgreSQL fetch the few rows through the (merchant_id, recipient_id) and (merchant_id, event_date) indexes.)
day_events as materialized (
    select *
    from messages
    where merchant_id = any(array(select distinct merchant_id from message_days))
        and event_date = any(array(select date_day from message_days))
        and (merchant_id, event_date) in (select merchant_id, date_day from message_days)
),

scope_keys as materialized (
    select distinct merchant_id, channel, provider, recipient_id, send_key
    from day_events
    where event_type in ('delivered', 'opened', 'clicked') and recipient_id is not null
),

scoped as materialized (
    select * from day_events
    union
    select *
    from messages
    where event_type in ('delivered', 'opened', 'clicked')
        and merchant_id = any(array(select distinct merchant_id from scope_keys))
        and recipient_id = any(array(select recipient_id from scope_keys))
        and (merchant_id, channel, provider, recipient_id, send_key) in (
            select merchant_id, channel, provider, recipient_id, send_key from scope_keys)
),
{%- set src = 'scoped' %}
{%- else %}
{%- set src = 'messages' %}
{%- endif %}

-- Each delivery is the send of its message to the recipient until the next delivery of the same message.
deliveries as (
    select
        merchant_id,
        channel,
        provider,
        recipient_id,
        send_key,
        message_event_id,
        occurred_at as delivered_at,
        lead(occurred_at) over (
            partition by merchant_id, channel, provider, recipient_id, send_key order by occurred_at, message_event_id
        ) as next_delivered_at,
        event_date,
        campaign_or_flow_id,
        message_type
    from {{ src }}
    where event_type = 'delivered' and recipient_id is not null
),

engagement as (
    select
        e.merchant_id,
        e.channel,
        e.provider,
        e.event_type,
        e.recipient_id,
        coalesce(d.event_date, e.event_date) as date_day,
        coalesce(d.campaign_or_flow_id, e.campaign_or_flow_id) as campaign_or_flow_id,
        coalesce(d.message_type, e.message_type) as message_type,
        d.message_event_id is not null as has_send
    from {{ src }} as e
    left join deliveries as d
        on d.merchant_id = e.merchant_id and d.channel = e.channel and d.provider = e.provider
        and d.recipient_id = e.recipient_id
        and d.send_key = e.send_key
        and d.delivered_at <= e.occurred_at and (d.next_delivered_at is null or e.occurred_at < d.next_delivered_at)
    where e.event_type in ('opened', 'clicked')
),

events as (
    select
        merchant_id,
        date_day,
        channel,
        provider,
        campaign_or_flow_id,
        max(message_type) as message_type,
        sum(sends) as sends,
        sum(delivered) as delivered,
        sum(opens) as opens,
        sum(unique_opens) as unique_opens,
        sum(clicks) as clicks,
        sum(unique_clicks) as unique_clicks,
        sum(bounces) as bounces,
        sum(unsubscribes) as unsubscribes,
        sum(spam_complaints) as spam_complaints
    from (
        select
            merchant_id,
            event_date as date_day,
            channel,
            provider,
            campaign_or_flow_id,
            max(message_type) as message_type,
            count(*) filter (where event_type in ('delivered', 'bounced')) as sends,
            count(*) filter (where event_type = 'delivered') as delivered,
            0 as opens,
            0 as unique_opens,
            0 as clicks,
            0 as unique_clicks,
            count(*) filter (where event_type = 'bounced') as bounces,
            count(*) filter (where event_type = 'unsubscribed') as unsubscribes,
            count(*) filter (where event_type = 'spam_complaint') as spam_complaints
        from {{ src }}
        where event_type in ('delivered', 'bounced', 'unsubscribed', 'spam_complaint')
        group by 1, 2, 3, 4, 5
        union all
        select
            merchant_id,
            date_day,
            channel,
            provider,
            campaign_or_flow_id,
            max(message_type),
            0,
            0,
            count(*) filter (where event_type = 'opened'),
            -- email: a click implies an open
            count(distinct recipient_id) filter (where has_send
                and (event_type = 'opened' or (channel = 'email' and event_type = 'clicked'))),
            count(*) filter (where event_type = 'clicked'),
            count(distinct recipient_id) filter (where has_send and event_type = 'clicked'),
            0,
            0,
            0
        from engagement
        group by 1, 2, 3, 4, 5
    ) as counted
    {%- if is_incremental() %}
    where (merchant_id, date_day) in (select merchant_id, date_day from message_days)
    {%- endif %}
    group by 1, 2, 3, 4, 5
    {%- if is_incremental() %}
    union all
    -- days rebuilt for their orders only keep the engagement counts they have (every counted row has at least
    -- one event: rows with none hold attributed orders only)
    select
        merchant_id, date_day, channel, provider, campaign_or_flow_id, message_type, sends, delivered, opens, unique_opens,
        clicks, unique_clicks, bounces, unsubscribes, spam_complaints
    from {{ this }}
    where (merchant_id, date_day) in (
            select merchant_id, date_day from affected_days
            except
            select merchant_id, date_day from message_days)
        and (sends > 0 or opens > 0 or clicks > 0 or unsubscribes > 0 or spam_complaints > 0)
    {%- endif %}
),

orders as (
    select
        merchant_id,
        order_date as date_day,
        channel,
        provider,
        campaign_or_flow_id,
        max(message_type) as message_type,
        count(*) as attributed_orders,
        sum(net_revenue) as attributed_revenue
    from {{ ref('message_attributed_orders') }}
    {%- if is_incremental() %}
    where (merchant_id, order_date) in (select merchant_id, date_day from affected_days)
    {%- endif %}
    group by 1, 2, 3, 4, 5
),

joined as (
    select
        coalesce(e.merchant_id, o.merchant_id) as merchant_id,
        coalesce(e.date_day, o.date_day) as date_day,
        coalesce(e.channel, o.channel) as channel,
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
        on o.merchant_id = e.merchant_id and o.date_day = e.date_day and o.channel = e.channel
        and o.provider = e.provider
        and o.campaign_or_flow_id = e.campaign_or_flow_id
)

select
    j.merchant_id,
    j.date_day,
    j.provider,
    j.channel,
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
