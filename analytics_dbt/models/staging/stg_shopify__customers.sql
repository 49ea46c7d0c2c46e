-- depends_on: {{ source('raw', 'shopify_customers') }}
-- Incremental, like stg_shopify__orders (macro dedupe_versions): rows landed since the last run compete with
-- the version already held, so a late re-emit of an older version does not win.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'customer_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'customer_id'], 'unique': True},
        {'columns': ['merchant_id', '_load_id']},
    ],
) }}
{% set raw %}
select
    merchant_id,
    id as customer_id,
    lower(nullif(trim(email), '')) as email,
    first_name,
    last_name,
    phone,
    created_at,
    updated_at,
    orders_count,
    total_spent::numeric(14, 2) as total_spent,
    state,
    coalesce(accepts_marketing, false) as accepts_marketing,
    currency,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('shopify_customers') }}) as r
{% endset %}
{{ dedupe_versions(raw, 'merchant_id, customer_id') }}
