-- Merchant x local date, every day from the first order or spend to the last. Orders, revenue and
-- customers count revenue orders only (no test, no cancelled); refunds are netted against the order's date.
-- MER = net revenue / ad spend (blended ROAS).
-- Unique index on the grain, led by (merchant_id, date_day), for the dashboards' per-merchant date ranges.
{{ config(post_hook=["{{ ensure_index(['merchant_id', 'date_day'], unique=true) }}"]) }}
with orders as (
    select
        merchant_id,
        order_date as date_day,
        count(*) as orders,
        sum(gross_sales) as gross_revenue,
        sum(discounts) as discounts,
        sum(refunds) as refunds,
        sum(net_revenue) as net_revenue,
        sum(shipping) as shipping,
        sum(tax) as tax,
        count(distinct customer_id) filter (where new_vs_repeat = 'new') as new_customers,
        count(distinct customer_id) filter (where new_vs_repeat = 'repeat') as returning_customers,
        count(*) filter (where new_vs_repeat = 'new') as new_customer_orders
    from {{ ref('fct_orders') }}
    where is_revenue_order
    group by 1, 2
),

spend as (
    select merchant_id, date_day, sum(spend) as ad_spend
    from {{ ref('fct_ad_spend_daily') }}
    group by 1, 2
),

bounds as (
    select merchant_id, min(date_day) as first_day, max(date_day) as last_day
    from (select merchant_id, date_day from orders union all select merchant_id, date_day from spend) as d
    group by 1
),

days as (
    select b.merchant_id, g::date as date_day
    from bounds as b
    cross join lateral generate_series(b.first_day, b.last_day, interval '1 day') as g
)

select
    d.merchant_id,
    d.date_day,
    coalesce(o.orders, 0) as orders,
    coalesce(o.gross_revenue, 0) as gross_revenue,
    coalesce(o.discounts, 0) as discounts,
    coalesce(o.refunds, 0) as refunds,
    coalesce(o.net_revenue, 0) as net_revenue,
    coalesce(o.shipping, 0) as shipping,
    coalesce(o.tax, 0) as tax,
    case when o.orders > 0 then round(o.net_revenue / o.orders, 2) end as aov,
    coalesce(o.new_customers, 0) as new_customers,
    coalesce(o.returning_customers, 0) as returning_customers,
    coalesce(s.ad_spend, 0) as ad_spend,
    case when s.ad_spend > 0 then round(coalesce(o.net_revenue, 0) / s.ad_spend, 4) end as mer,
    case when o.new_customers > 0 then round(coalesce(s.ad_spend, 0) / o.new_customers, 2) end as ncac,
    m.currency,
    now() as dbt_updated_at
from days as d
inner join {{ ref('dim_merchants') }} as m on m.merchant_id = d.merchant_id
left join orders as o on o.merchant_id = d.merchant_id and o.date_day = d.date_day
left join spend as s on s.merchant_id = d.merchant_id and s.date_day = d.date_day
