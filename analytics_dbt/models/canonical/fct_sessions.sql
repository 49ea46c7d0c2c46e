-- One row per web session with its channel (macro session_channel) and the customer it belongs to:
-- the session's own customer id, else the customer last identified on the same anonymous id (cookie),
-- else the customer whose email the session carries.
-- Incremental: recompute new sessions, every session sharing an anonymous id with a new session (a new
-- identification re-stitches the cookie's history), and sessions carrying the email of a changed customer.
-- No merge joins (pre_hook, this model's transaction only): the batch's size is unknowable when planning (a sync
-- lands an hour, or a store's whole history), so the CTEs' estimates can be off by 10,000x, and a merge join of
-- the sessions with `identified` on merchant_id alone then compares every session with every identified cookie
-- of its store (224 s for 136k sessions; 11 s with hash joins, which cost the same on a small batch).
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'session_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="set local enable_mergejoin = off",
    indexes=[
        {'columns': ['merchant_id', 'session_id'], 'unique': True},
                {'columns': ['merchant_id', 'customer_id']},
        {'columns': ['dbt_updated_at']},
    ],
) }}
with
{%- if is_incremental() %}
new_sessions as materialized (
    select s.merchant_id, s.session_id, s.anonymous_id
    from {{ ref('stg_web_sessions') }} as s
    where {{ loaded_since_last_run('s', 'stg_web_sessions', 'web_sessions') }}
),

changed_emails as (
    select c.merchant_id, c.email
    from {{ ref('stg_shopify__customers') }} as c
    where c.email is not null and {{ loaded_since_last_run('c', 'stg_shopify__customers', 'shopify_customers') }}
),

-- (`= any(array(...))` lets PostgreSQL reach these few sessions through the (merchant_id, anonymous_id) and
-- (merchant_id, session_id) indexes instead of scanning every session.)
sessions as materialized (
    select s.* from {{ ref('stg_web_sessions') }} as s
    where s.merchant_id = any(array(select distinct merchant_id from new_sessions))
        and s.anonymous_id = any(array(select anonymous_id from new_sessions where anonymous_id is not null))
        and (s.merchant_id, s.anonymous_id) in (select merchant_id, anonymous_id from new_sessions)
    union
    select s.* from {{ ref('stg_web_sessions') }} as s
    where s.merchant_id = any(array(select distinct merchant_id from new_sessions))
        and s.session_id = any(array(select session_id from new_sessions))
        and (s.merchant_id, s.session_id) in (select merchant_id, session_id from new_sessions)
    union
    select s.* from {{ ref('stg_web_sessions') }} as s
    where s.customer_id is null and (s.merchant_id, s.email) in (select merchant_id, email from changed_emails)
),

identified as (
    select distinct on (merchant_id, anonymous_id) merchant_id, anonymous_id, customer_id
    from {{ ref('stg_web_sessions') }}
    where customer_id is not null
        and merchant_id = any(array(select distinct merchant_id from sessions))
        and anonymous_id = any(array(select distinct anonymous_id from sessions where anonymous_id is not null))
        and (merchant_id, anonymous_id) in (select merchant_id, anonymous_id from sessions)
    order by merchant_id, anonymous_id, started_at desc, session_id desc
),
{%- else %}
sessions as (
    select * from {{ ref('stg_web_sessions') }}
),

identified as (
    select distinct on (merchant_id, anonymous_id) merchant_id, anonymous_id, customer_id
    from sessions
    where customer_id is not null and anonymous_id is not null
    order by merchant_id, anonymous_id, started_at desc, session_id desc
),
{%- endif %}

by_email as (
    select distinct on (merchant_id, email) merchant_id, email, customer_id
    from {{ ref('stg_shopify__customers') }}
    where email is not null
    order by merchant_id, email, updated_at desc
),

resolved as (
    select
        s.merchant_id,
        s.session_id,
        s.anonymous_id,
        coalesce(s.customer_id, i.customer_id, e.customer_id) as customer_id,
        s.customer_id is null and coalesce(i.customer_id, e.customer_id) is not null as is_stitched,
        s.started_at,
        s.ended_at,
        {{ local_date('s.started_at', 'm.timezone') }} as session_date,
        s.landing_page,
        s.referrer,
        s.referrer_host,
        s.utm_source,
        s.utm_medium,
        s.utm_campaign,
        s.utm_content,
        s.utm_term,
        s.fbclid,
        s.gclid,
        s.device,
        {{ session_channel('s.utm_source', 's.utm_medium', 's.referrer_host', 's.fbclid', 's.gclid') }} as channel,
        s.utm_campaign as campaign,
        s._airbyte_extracted_at
    from sessions as s
    inner join {{ ref('dim_merchants') }} as m on m.merchant_id = s.merchant_id
    left join identified as i on i.merchant_id = s.merchant_id and i.anonymous_id = s.anonymous_id
    left join by_email as e on e.merchant_id = s.merchant_id and e.email = s.email
),

hashed as (
    select
        resolved.*,
        md5(row(
            anonymous_id, customer_id, is_stitched, started_at, ended_at, session_date, landing_page, referrer,
            utm_source, utm_medium, utm_campaign, utm_content, utm_term, fbclid, gclid, device, channel
        )::text) as _row_hash
    from resolved
)

select hashed.*, now() as dbt_updated_at
from hashed
{%- if is_incremental() %}
-- unchanged sessions are not rewritten, so dbt_updated_at marks real changes for attribution
where not exists (
    select 1 from {{ this }} as t
    where t.merchant_id = hashed.merchant_id and t.session_id = hashed.session_id and t._row_hash = hashed._row_hash
)
{%- endif %}
