-- depends_on: {{ source('raw', 'shopify_orders') }}
-- Incremental: rows landed since the last run compete with the version already held (a late re-emit of
-- an older version must not win), newest updated_at first, then newest extraction.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'order_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['merchant_id', 'order_id'], 'unique': True}, {'columns': ['merchant_id', '_load_id']}],
) }}
{% set raw %}
select
    merchant_id,
    id as order_id,
    name as order_name,
    order_number,
    lower(nullif(trim(email), '')) as email,
    coalesce(({{ json_text('customer', ['id']) }})::bigint, null) as customer_id,
    created_at,
    updated_at,
    processed_at,
    cancelled_at,
    cancel_reason,
    currency,
    financial_status,
    fulfillment_status,
    total_price::numeric(14, 2) as total_price,
    subtotal_price::numeric(14, 2) as subtotal_price,
    total_tax::numeric(14, 2) as total_tax,
    total_discounts::numeric(14, 2) as total_discounts,
    total_line_items_price::numeric(14, 2) as total_line_items_price,
    coalesce(({{ json_text('total_shipping_price_set', ['shop_money', 'amount']) }})::numeric(14, 2), 0) as shipping_price,
    coalesce(test, false) as is_test,
    source_name,
    landing_site,
    referring_site,
    tags,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('shopify_orders') }}) as r
{% endset %}
{{ dedupe_versions(raw, 'merchant_id, order_id') }}
