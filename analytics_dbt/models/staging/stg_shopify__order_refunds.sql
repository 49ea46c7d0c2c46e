-- depends_on: {{ source('raw', 'shopify_order_refunds') }}
{% set raw %}
select
    merchant_id,
    id as refund_id,
    order_id,
    created_at,
    coalesce(processed_at, created_at) as processed_at,
    {{ json_array_sum('refund_line_items', 'subtotal') }}::numeric(14, 2) as refund_subtotal,
    ({{ json_array_sum('refund_line_items', 'total_tax') }}
     + {{ json_array_sum('order_adjustments', 'tax_amount', where=json_text('e', ['kind']) ~ " = 'shipping_refund'") }}
    )::numeric(14, 2) as refund_tax,
    (-{{ json_array_sum('order_adjustments', 'amount', where=json_text('e', ['kind']) ~ " = 'shipping_refund'") }})
        ::numeric(14, 2) as refund_shipping,
    {{ json_array_sum('transactions', 'amount', where=json_text('e', ['kind']) ~ " = 'refund' and coalesce("
        ~ json_text('e', ['status']) ~ ", 'success') = 'success'") }}::numeric(14, 2) as refund_amount,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('shopify_order_refunds') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, refund_id', '_airbyte_extracted_at desc') }}
