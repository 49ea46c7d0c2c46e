-- depends_on: {{ source('raw', 'shopify_order_refunds') }}
{% set raw %}
select
    merchant_id,
    id as refund_id,
    order_id,
    created_at,
    coalesce(processed_at, created_at) as processed_at,
    (select coalesce(sum((li ->> 'subtotal')::numeric), 0) from jsonb_array_elements(coalesce(refund_line_items, '[]')) as li)
        ::numeric(14, 2) as refund_subtotal,
    ((select coalesce(sum((li ->> 'total_tax')::numeric), 0) from jsonb_array_elements(coalesce(refund_line_items, '[]')) as li)
     + (select coalesce(sum((a ->> 'tax_amount')::numeric), 0) from jsonb_array_elements(coalesce(order_adjustments, '[]')) as a
        where a ->> 'kind' = 'shipping_refund'))::numeric(14, 2) as refund_tax,
    (select -coalesce(sum((a ->> 'amount')::numeric), 0) from jsonb_array_elements(coalesce(order_adjustments, '[]')) as a
     where a ->> 'kind' = 'shipping_refund')::numeric(14, 2) as refund_shipping,
    (select coalesce(sum((t ->> 'amount')::numeric), 0) from jsonb_array_elements(coalesce(transactions, '[]')) as t
     where t ->> 'kind' = 'refund' and coalesce(t ->> 'status', 'success') = 'success')::numeric(14, 2) as refund_amount,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('shopify_order_refunds') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, refund_id', '_airbyte_extracted_at desc') }}
