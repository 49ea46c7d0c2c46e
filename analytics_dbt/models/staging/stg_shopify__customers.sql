-- depends_on: {{ source('raw', 'shopify_customers') }}
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
from ({{ raw_union('shopify_customers') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, customer_id', 'updated_at desc nulls last, _airbyte_extracted_at desc') }}
