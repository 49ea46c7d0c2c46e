-- Every customer known from the customers stream or from an order. Cohort = local month of the first
-- revenue order (not test, not cancelled).
-- Incremental: customers whose record landed since the last run or whose orders were recomputed.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'customer_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[{'columns': ['merchant_id', 'customer_id'], 'unique': True}],
) }}
with ids as (
    {%- if is_incremental() %}
    select c.merchant_id, c.customer_id from {{ ref('stg_shopify__customers') }} as c
    where {{ loaded_since_last_run('c', 'stg_shopify__customers', 'shopify_customers') }}
    union
    select merchant_id, customer_id from {{ ref('fct_orders') }}
    where customer_id is not null
        and {{ changed_since_last_run() }}
    {%- else %}
    select merchant_id, customer_id from {{ ref('stg_shopify__customers') }}
    union
    select merchant_id, customer_id from {{ ref('fct_orders') }} where customer_id is not null
    {%- endif %}
),

customer_orders as (
    select o.*
    from {{ ref('fct_orders') }} as o
    {%- if is_incremental() %}
    where (o.merchant_id, o.customer_id) in (select merchant_id, customer_id from ids)
    {%- endif %}
),

order_stats as (
    select
        merchant_id,
        customer_id,
        min(order_at) as first_order_at,
        min(order_date) as first_order_date,
        max(order_at) as last_order_at,
        count(*) as lifetime_orders,
        sum(gross_sales) as lifetime_gross_sales,
        sum(refunds) as lifetime_refunds,
        sum(net_revenue) as lifetime_net_revenue
    from customer_orders
    where is_revenue_order and customer_id is not null
    group by 1, 2
),

latest_order_email as (
    select distinct on (merchant_id, customer_id) merchant_id, customer_id, email
    from customer_orders
    where customer_id is not null and email is not null
    order by merchant_id, customer_id, order_at desc, order_id desc
)

select
    ids.merchant_id,
    ids.customer_id,
    coalesce(c.email, e.email) as email,
    c.first_name,
    c.last_name,
    c.created_at,
    coalesce(c.accepts_marketing, false) as accepts_marketing,
    s.first_order_at,
    s.first_order_date,
    date_trunc('month', s.first_order_date)::date as cohort_month,
    s.last_order_at,
    coalesce(s.lifetime_orders, 0) as lifetime_orders,
    coalesce(s.lifetime_gross_sales, 0) as lifetime_gross_sales,
    coalesce(s.lifetime_refunds, 0) as lifetime_refunds,
    coalesce(s.lifetime_net_revenue, 0) as lifetime_net_revenue,
    c._airbyte_extracted_at as _customer_extracted_at,
    now() as dbt_updated_at
from ids
left join {{ ref('stg_shopify__customers') }} as c on c.merchant_id = ids.merchant_id and c.customer_id = ids.customer_id
left join order_stats as s on s.merchant_id = ids.merchant_id and s.customer_id = ids.customer_id
left join latest_order_email as e on e.merchant_id = ids.merchant_id and e.customer_id = ids.customer_id
