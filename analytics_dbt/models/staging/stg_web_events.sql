-- depends_on: {{ source('raw', 'web_events') }}
-- Web pixel events written by our collector (/collect/v1/batch), incremental on what landed since the last run
-- (macros/landed.sql). Events never change (the collector dedupes on event_id), so a copy of an event already
-- held simply replaces it, which is what a full rebuild keeps too. Empty strings are nulls; referrer_host and page_host are parsed out
-- of the URLs for the sessions' channel (int_web_sessions).
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'event_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'event_id'], 'unique': True},
        {'columns': ['merchant_id', '_load_id']},
        {'columns': ['merchant_id', 'client_id', 'occurred_at']},
    ],
) }}
{% set raw %}
select
    merchant_id,
    event_id,
    event_name,
    client_id,
    seq,
    occurred_at,
    received_at,
    nullif(page_url, '') as page_url,
    nullif(page_path, '') as page_path,
    lower(substring(page_url from '^[a-zA-Z]+://([^/:?#]+)')) as page_host,
    nullif(referrer, '') as referrer,
    lower(substring(referrer from '^[a-zA-Z]+://([^/:?#]+)')) as referrer_host,
    nullif(utm_source, '') as utm_source,
    nullif(utm_medium, '') as utm_medium,
    nullif(utm_campaign, '') as utm_campaign,
    nullif(utm_content, '') as utm_content,
    nullif(utm_term, '') as utm_term,
    nullif(fbclid, '') as fbclid,
    nullif(gclid, '') as gclid,
    nullif(ttclid, '') as ttclid,
    nullif(device, '') as device,
    customer_id,
    order_id,
    nullif(checkout_token, '') as checkout_token,
    lower(nullif(email_sha256, '')) as email_sha256,
    value::numeric(14, 2) as value,
    nullif(currency, '') as currency,
    nullif(product_id, '') as product_id,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('web_events') }}) as r
where event_id is not null and client_id is not null and occurred_at is not null
{% endset %}
{{ dedupe(raw, 'merchant_id, event_id', '_airbyte_extracted_at desc, received_at desc') }}
