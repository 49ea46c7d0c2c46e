{#- Attentive arrives by webhook, one table per event type, all of the same shape. Webhook rows carry no
    id: an event is identified by its type, message (or channel), subscriber and timestamp.
    Incremental on what landed since the last run (macros/landed.sql), like stg_klaviyo__events: a later copy of an event replaces the one
    held, which is the copy a full rebuild keeps too. -#}

{% macro stg_attentive_config() %}
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'event_key'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'event_key'], 'unique': True},
        {'columns': ['merchant_id', '_load_id']},
    ],
) }}
{% endmacro %}

{% macro stg_attentive_message_event(stream, has_link_url=false) %}
{{ stg_attentive_config() }}
{% set raw %}
select
    merchant_id,
    md5('{{ stream }}|' || coalesce(message_id, '') || '|' || coalesce(subscriber_external_id, '') || '|' || "timestamp"::text)
        as event_key,
    "timestamp" as occurred_at,
    message_id,
    message_name,
    upper(message_type) as message_type,
    upper(message_channel) as message_channel,
    subscriber_external_id,
    lower(nullif(trim(subscriber_email), '')) as email,
    subscriber_phone as phone,
    {{ 'message_link_click_url' if has_link_url else 'null::text' }} as link_url,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('attentive_' ~ stream) }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, event_key', '_airbyte_extracted_at desc') }}
{% endmacro %}

{% macro stg_attentive_subscription_event(stream) %}
{{ stg_attentive_config() }}
{% set raw %}
select
    merchant_id,
    md5('{{ stream }}|' || coalesce(subscriber_external_id, '') || '|' || coalesce(subscription_channel, '') || '|'
        || "timestamp"::text) as event_key,
    "timestamp" as occurred_at,
    upper(subscription_type) as subscription_type,
    upper(subscription_channel) as subscription_channel,
    creative_name,
    subscriber_external_id,
    lower(nullif(trim(subscriber_email), '')) as email,
    subscriber_phone as phone,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('attentive_' ~ stream) }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, event_key', '_airbyte_extracted_at desc') }}
{% endmacro %}
