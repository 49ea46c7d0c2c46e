-- depends_on: {{ source('raw', 'shopify_shop') }}
{% set raw %}
select
    merchant_id,
    id as shop_id,
    name as shop_name,
    domain,
    myshopify_domain,
    currency,
    iana_timezone,
    created_at,
    updated_at,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('shopify_shop') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, shop_id', 'updated_at desc nulls last, _airbyte_extracted_at desc') }}
