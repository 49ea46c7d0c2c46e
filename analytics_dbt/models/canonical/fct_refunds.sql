-- One row per refund, dated when processed (cash view); fct_orders nets it against the order instead.
select
    r.merchant_id,
    r.refund_id,
    r.order_id,
    r.processed_at as refunded_at,
    {{ local_date('r.processed_at', 'm.timezone') }} as refund_date,
    o.order_date,
    r.refund_subtotal,
    r.refund_tax,
    r.refund_shipping,
    r.refund_amount,
    o.currency,
    now() as dbt_updated_at
from {{ ref('stg_shopify__order_refunds') }} as r
inner join {{ ref('dim_merchants') }} as m on m.merchant_id = r.merchant_id
inner join {{ ref('fct_orders') }} as o on o.merchant_id = r.merchant_id and o.order_id = r.order_id
