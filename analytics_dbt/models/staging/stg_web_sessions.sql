-- depends_on: {{ source('raw', 'web_sessions') }}
-- Incremental on what landed since the last run (macros/landed.sql); sessions are immutable once landed (a
-- re-emit replaces its copy). fct_sessions finds a changed customer's anonymous sessions by (merchant_id, email).
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'session_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    pre_hook="{{ session_set('work_mem', '1GB') }}",
    indexes=[
        {'columns': ['merchant_id', 'session_id'], 'unique': True},
        {'columns': ['merchant_id', '_load_id']},
        {'columns': ['merchant_id', 'anonymous_id']},
    ],
    post_hook="{{ ensure_index(['merchant_id', 'email']) }}",
) }}
{% set raw %}
select
    merchant_id,
    session_id,
    anonymous_id,
    customer_id,
    lower(nullif(trim(email), '')) as email,
    started_at,
    ended_at,
    landing_page,
    nullif(referrer, '') as referrer,
    lower(substring(referrer from '^[a-zA-Z]+://([^/:?#]+)')) as referrer_host,
    nullif(utm_source, '') as utm_source,
    nullif(utm_medium, '') as utm_medium,
    nullif(utm_campaign, '') as utm_campaign,
    nullif(utm_content, '') as utm_content,
    nullif(utm_term, '') as utm_term,
    nullif(fbclid, '') as fbclid,
    nullif(gclid, '') as gclid,
    device,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('web_sessions') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, session_id', '_airbyte_extracted_at desc') }}
