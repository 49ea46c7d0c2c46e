-- One row per Shopify order (latest version). Test and cancelled orders stay, flagged, and are excluded from
-- revenue (is_revenue_order = false): they get no sequence number and every mart filters them out.
-- Incremental: an order or refund landed since the last run (whatever its age: refunds come weeks later)
-- recomputes every order of that customer, so sequence numbers stay exact; downstream models find the
-- recomputed rows by dbt_updated_at.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'order_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'order_id'], 'unique': True},
        {'columns': ['merchant_id', '_source_extracted_at']},
        {'columns': ['dbt_updated_at']},
    ],
) }}
with
{%- if is_incremental() %}
changed as (
    select o.merchant_id, o.order_id, o.customer_id
    from {{ ref('stg_shopify__orders') }} as o
    where {{ loaded_since_last_run('o', 'stg_shopify__orders', 'shopify_orders') }}
    union
    select r.merchant_id, r.order_id, o.customer_id
    from {{ ref('stg_shopify__order_refunds') }} as r
    left join {{ ref('stg_shopify__orders') }} as o on o.merchant_id = r.merchant_id and o.order_id = r.order_id
    where {{ loaded_since_last_run('r', 'stg_shopify__order_refunds', 'shopify_order_refunds') }}
),

orders as (
    select * from {{ ref('stg_shopify__orders') }} as o
    where (o.merchant_id, o.order_id) in (select merchant_id, order_id from changed)
        or (o.merchant_id, o.customer_id) in (select merchant_id, customer_id from changed where customer_id is not null)
),
{%- else %}
orders as (
    select * from {{ ref('stg_shopify__orders') }}
),
{%- endif %}

refunds as (
    select
        merchant_id,
        order_id,
        count(*) as refund_count,
        sum(refund_subtotal) as refund_subtotal,
        sum(refund_tax) as refund_tax,
        sum(refund_shipping) as refund_shipping,
        sum(refund_amount) as refund_amount,
        min(processed_at) as first_refund_at,
        max(_airbyte_extracted_at) as last_refund_extracted_at
    from {{ ref('stg_shopify__order_refunds') }}
    group by 1, 2
),

base as (
    select
        o.merchant_id,
        o.order_id,
        o.order_name,
        o.order_number,
        o.customer_id,
        o.email,
        o.created_at as order_at,
        {{ local_date('o.created_at', 'm.timezone') }} as order_date,
        o.updated_at,
        o.cancelled_at,
        o.financial_status,
        o.fulfillment_status,
        o.source_name,
        o.is_test,
        o.cancelled_at is not null as is_cancelled,
        not o.is_test and o.cancelled_at is null as is_revenue_order,
        o.currency,
        o.total_line_items_price as gross_sales,
        o.total_discounts as discounts,
        coalesce(r.refund_subtotal, 0) as refunds,
        o.total_line_items_price - o.total_discounts - coalesce(r.refund_subtotal, 0) as net_revenue,
        o.shipping_price as shipping,
        o.total_tax as tax,
        coalesce(r.refund_tax, 0) as refunded_tax,
        coalesce(r.refund_shipping, 0) as refunded_shipping,
        coalesce(r.refund_amount, 0) as refunded_amount,
        o.total_price,
        coalesce(r.refund_count, 0) as refund_count,
        r.first_refund_at,
        greatest(o._airbyte_extracted_at, r.last_refund_extracted_at) as _source_extracted_at
    from orders as o
    inner join {{ ref('dim_merchants') }} as m on m.merchant_id = o.merchant_id
    left join refunds as r on r.merchant_id = o.merchant_id and r.order_id = o.order_id
),

sequenced as (
    select
        base.*,
        case when is_revenue_order and customer_id is not null then
            row_number() over (
                partition by merchant_id, customer_id, is_revenue_order order by order_at, order_id
            )
        end as customer_order_seq
    from base
),

final as (
    select
        sequenced.*,
        case
            when not is_revenue_order then null
            when customer_order_seq is null or customer_order_seq = 1 then 'new'
            else 'repeat'
        end as new_vs_repeat
    from sequenced
),

hashed as (
    select
        final.*,
        md5(row(
            order_name, order_number, customer_id, email, order_at, order_date, updated_at, cancelled_at,
            financial_status, fulfillment_status, source_name, is_test, is_cancelled, is_revenue_order, currency,
            gross_sales, discounts, refunds, net_revenue, shipping, tax, refunded_tax, refunded_shipping,
            refunded_amount, total_price, refund_count, first_refund_at, customer_order_seq, new_vs_repeat
        )::text) as _row_hash
    from final
)

select hashed.*, now() as dbt_updated_at
from hashed
{%- if is_incremental() %}
-- rows whose content did not change are not rewritten, so dbt_updated_at marks real changes downstream
where not exists (
    select 1 from {{ this }} as t
    where t.merchant_id = hashed.merchant_id and t.order_id = hashed.order_id and t._row_hash = hashed._row_hash
)
{%- endif %}
