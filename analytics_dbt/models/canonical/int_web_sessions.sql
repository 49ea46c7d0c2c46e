-- Web sessions built from the pixel's events (stg_web_events), one row per session. Rules (docs/metrics.md,
-- "Sessions"; GA4 and Snowplow use the same 30 minutes): per store and client id (Shopify's browser id), events
-- ordered by occurred_at, then seq (the pixel's per-client counter), then event_id; an event starts a new session
-- when it comes more than 30 minutes (strictly) after the client's previous event, or when it carries a traffic
-- source (any of utm_source/medium/campaign/content/term, fbclid, gclid, ttclid) different from the one of the
-- latest event carrying a source in the same visit: a session's source is its first event's, and an event
-- without a source (an internal page) never starts one. session_id = md5(merchant, client id, first event id).
-- Identity (who the client is) is resolved in fct_sessions; this model keeps what the session's own events say
-- (the last customer_id, order_id and email hash they carry).
-- Incremental: only clients with events landed since the last run are re-sessionised, from their first session
-- that ended at most 30 minutes before their earliest new event (or from that event): a new event can extend,
-- merge or split that session and every later one, while an earlier session ended more than 30 minutes before
-- any new event and its start does not depend on anything after it, so it is copied over as held. The client's
-- rows are replaced whole (unique key merchant_id, client_id): a session merged into another disappears. A full
-- refresh gives the same rows (tests/analytics/test_web_sessions.py).
{%- set gap = "interval '30 minutes'" %}
{%- set order_key = "occurred_at, seq, event_id" %}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'client_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'session_id'], 'unique': True},
        {'columns': ['merchant_id', 'client_id', 'started_at']},
        {'columns': ['merchant_id', 'order_id']},
        {'columns': ['merchant_id', 'email_sha256']},
        {'columns': ['dbt_updated_at']},
    ],
) }}
with
{%- if is_incremental() %}
new_events as materialized (
    select e.merchant_id, e.client_id, e.occurred_at, coalesce(e.seq, 0) as seq, e.event_id
    from {{ ref('stg_web_events') }} as e
    where {{ loaded_since_last_run('e', 'stg_web_events', 'web_events') }}
),

new_clients as materialized (
    select merchant_id, client_id, min(occurred_at) as first_new_at
    from new_events
    group by 1, 2
),

-- Where each client's re-sessionising starts, as an ordering key: its earliest new event, or the first event of
-- its first held session that ended at most 30 minutes before that event, whichever comes first.
restart as materialized (
    select distinct on (merchant_id, client_id) merchant_id, client_id, occurred_at, seq, event_id
    from (
        select merchant_id, client_id, occurred_at, seq, event_id from new_events
        union all
        select t.merchant_id, t.client_id, t.started_at, t.first_seq, t.first_event_id
        from {{ this }} as t
        inner join new_clients as n
            on n.merchant_id = t.merchant_id and n.client_id = t.client_id and t.ended_at >= n.first_new_at - {{ gap }}
    ) as c
    order by merchant_id, client_id, occurred_at, seq, event_id
),

-- the affected clients' sessions that end before the restart point: unchanged
held as (
    select t.*
    from {{ this }} as t
    inner join restart as r
        on r.merchant_id = t.merchant_id and r.client_id = t.client_id
        and (t.started_at, t.first_seq, t.first_event_id) < (r.occurred_at, r.seq, r.event_id)
),
{%- endif %}

events as (
    select
        e.merchant_id,
        e.client_id,
        e.event_id,
        e.event_name,
        e.occurred_at,
        coalesce(e.seq, 0) as seq,
        e.page_url,
        e.page_path,
        -- a referrer on the shop's own host is internal navigation, not where the visit came from
        case when e.referrer_host is distinct from e.page_host then e.referrer end as referrer,
        case when e.referrer_host is distinct from e.page_host then e.referrer_host end as referrer_host,
        e.utm_source,
        e.utm_medium,
        e.utm_campaign,
        e.utm_content,
        e.utm_term,
        e.fbclid,
        e.gclid,
        e.ttclid,
        e.device,
        e.customer_id,
        e.order_id,
        e.email_sha256,
        e._airbyte_extracted_at,
        case when coalesce(e.utm_source, e.utm_medium, e.utm_campaign, e.utm_content, e.utm_term, e.fbclid, e.gclid,
                           e.ttclid) is not null
            then row(e.utm_source, e.utm_medium, e.utm_campaign, e.utm_content, e.utm_term, e.fbclid, e.gclid,
                     e.ttclid)::text
        end as traffic_source
    from {{ ref('stg_web_events') }} as e
    {%- if is_incremental() %}
    inner join restart as r
        on r.merchant_id = e.merchant_id and r.client_id = e.client_id
        and (e.occurred_at, coalesce(e.seq, 0), e.event_id) >= (r.occurred_at, r.seq, r.event_id)
    {%- endif %}
),

-- visits: runs of events at most 30 minutes apart
gaps as (
    select
        events.*,
        case when lag(occurred_at) over w is null or occurred_at - lag(occurred_at) over w > {{ gap }}
            then 1 else 0 end as is_visit_start
    from events
    window w as (partition by merchant_id, client_id order by {{ order_key }})
),

visits as (
    select
        gaps.*,
        sum(is_visit_start) over (
            partition by merchant_id, client_id order by {{ order_key }} rows between unbounded preceding and current row
        ) as visit_no
    from gaps
),

-- an event carrying a source starts a session when the visit's previous event carrying one had another (or none)
source_changes as (
    select
        merchant_id,
        client_id,
        event_id,
        traffic_source is distinct from lag(traffic_source) over (
            partition by merchant_id, client_id, visit_no order by {{ order_key }}
        ) as is_source_change
    from visits
    where traffic_source is not null
),

numbered as (
    select
        v.*,
        sum(case when v.is_visit_start = 1 or coalesce(c.is_source_change, false) then 1 else 0 end) over (
            partition by v.merchant_id, v.client_id order by v.occurred_at, v.seq, v.event_id
            rows between unbounded preceding and current row
        ) as session_no
    from visits as v
    left join source_changes as c
        on c.merchant_id = v.merchant_id and c.client_id = v.client_id and c.event_id = v.event_id
),

sessions as (
    select
        merchant_id,
        client_id,
        session_no,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as event_count,
        count(*) filter (where event_name = 'page_viewed') as page_views,
        count(*) filter (where event_name = 'product_viewed') as product_views,
        count(*) filter (where event_name = 'product_added_to_cart') as adds_to_cart,
        count(*) filter (where event_name = 'checkout_started') as checkouts_started,
        count(*) filter (where event_name = 'checkout_completed') as checkouts_completed,
        (array_agg(customer_id order by occurred_at desc, seq desc, event_id desc)
            filter (where customer_id is not null))[1] as customer_id,
        (array_agg(order_id order by occurred_at desc, seq desc, event_id desc)
            filter (where order_id is not null and event_name = 'checkout_completed'))[1] as order_id,
        (array_agg(email_sha256 order by occurred_at desc, seq desc, event_id desc)
            filter (where email_sha256 is not null))[1] as email_sha256,
        max(_airbyte_extracted_at) as _airbyte_extracted_at
    from numbered
    group by merchant_id, client_id, session_no
),

built as (
    select
        f.merchant_id,
        md5(f.merchant_id::text || '/' || f.client_id || '/' || f.event_id) as session_id,
        f.client_id,
        s.started_at,
        s.ended_at,
        f.event_id as first_event_id,
        f.seq as first_seq,
        f.page_url as landing_page,
        f.page_path as landing_path,
        f.referrer,
        f.referrer_host,
        f.utm_source,
        f.utm_medium,
        f.utm_campaign,
        f.utm_content,
        f.utm_term,
        f.fbclid,
        f.gclid,
        f.ttclid,
        f.device,
        s.event_count,
        s.page_views,
        s.product_views,
        s.adds_to_cart,
        s.checkouts_started,
        s.checkouts_completed,
        s.checkouts_completed > 0 as is_converted,
        s.customer_id,
        s.order_id,
        s.email_sha256,
        s._airbyte_extracted_at
    from sessions as s
    inner join (
        select distinct on (merchant_id, client_id, session_no) *
        from numbered
        order by merchant_id, client_id, session_no, {{ order_key }}
    ) as f on f.merchant_id = s.merchant_id and f.client_id = s.client_id and f.session_no = s.session_no
)

select built.*, now() as dbt_updated_at
from built
{%- if is_incremental() %}
union all
select
    merchant_id, session_id, client_id, started_at, ended_at, first_event_id, first_seq, landing_page, landing_path,
    referrer, referrer_host, utm_source, utm_medium, utm_campaign, utm_content, utm_term, fbclid, gclid, ttclid,
    device, event_count, page_views, product_views, adds_to_cart, checkouts_started, checkouts_completed,
    is_converted, customer_id, order_id, email_sha256, _airbyte_extracted_at, now() as dbt_updated_at
from held
{%- endif %}
