-- depends_on: {{ source('raw', 'klaviyo_profiles') }}
-- Incremental: profiles landed since the last run replace their previous version (Airbyte emits the
-- current state of a profile, so the newest extraction is the newest version).
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'profile_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['merchant_id', 'profile_id'], 'unique': True}, {'columns': ['merchant_id', '_load_id']}],
) }}
{% set raw %}
select
    merchant_id,
    id as profile_id,
    lower(nullif(trim({{ json_text('attributes', ['email']) }}), '')) as email,
    {{ json_text('attributes', ['phone_number']) }} as phone_number,
    ({{ json_text('attributes', ['created']) }})::timestamptz as created_at,
    updated,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('klaviyo_profiles') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, profile_id', 'updated desc nulls last, _airbyte_extracted_at desc') }}
