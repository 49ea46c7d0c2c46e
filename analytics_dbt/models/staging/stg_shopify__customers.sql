-- depends_on: {{ source('raw', 'shopify_customers') }}
-- Incremental, like stg_shopify__orders: rows landed since the last run compete with the version already
-- held (a late re-emit of an older version must not win), newest updated_at first, then newest extraction.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'customer_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'customer_id'], 'unique': True},
        {'columns': ['merchant_id', '_airbyte_extracted_at']},
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
    _airbyte_extracted_at
from ({{ raw_union('shopify_customers', incremental_on='_airbyte_extracted_at') }}) as r
{% endset %}
{%- if is_incremental() %}
with new_rows as (
    {{ raw }}
),

candidates as (
    select * from new_rows
    union all
    select t.* from {{ this }} as t
    where (t.merchant_id, t.customer_id) in (select merchant_id, customer_id from new_rows)
)

{{ dedupe('select * from candidates', 'merchant_id, customer_id', 'updated_at desc nulls last, _airbyte_extracted_at desc') }}
{%- else %}
{{ dedupe(raw, 'merchant_id, customer_id', 'updated_at desc nulls last, _airbyte_extracted_at desc') }}
{%- endif %}
