-- Cohort = local month of a customer's first revenue order; month k = months between the cohort month and
-- the order's local month. Revenue is net of refunds, counted on the order (so in the order's own month,
-- whenever the refund is processed). Every cohort gets a row for each month up to the latest order month.
with orders as (
    select
        o.merchant_id,
        o.customer_id,
        o.order_id,
        o.net_revenue,
        o.currency,
        c.cohort_month,
        date_trunc('month', o.order_date)::date as order_month
    from {{ ref('fct_orders') }} as o
    inner join {{ ref('dim_customers') }} as c on c.merchant_id = o.merchant_id and c.customer_id = o.customer_id
    where o.is_revenue_order and o.customer_id is not null
),

cohorts as (
    select merchant_id, cohort_month, count(distinct customer_id) as cohort_size, max(currency) as currency
    from orders
    group by 1, 2
),

latest as (
    select merchant_id, max(order_month) as last_month from orders group by 1
),

grid as (
    select
        c.merchant_id,
        c.cohort_month,
        c.cohort_size,
        c.currency,
        k.k as months_since_first_order
    from cohorts as c
    inner join latest as l on l.merchant_id = c.merchant_id
    cross join lateral generate_series(
        0,
        ((extract(year from l.last_month) - extract(year from c.cohort_month)) * 12
         + extract(month from l.last_month) - extract(month from c.cohort_month))::int
    ) as k (k)
),

activity as (
    select
        merchant_id,
        cohort_month,
        ((extract(year from order_month) - extract(year from cohort_month)) * 12
         + extract(month from order_month) - extract(month from cohort_month))::int as months_since_first_order,
        count(distinct customer_id) as active_customers,
        count(*) as orders,
        sum(net_revenue) as net_revenue
    from orders
    group by 1, 2, 3
),

spend as (
    select merchant_id, date_trunc('month', date_day)::date as spend_month, sum(spend) as ad_spend
    from {{ ref('fct_ad_spend_daily') }}
    group by 1, 2
),

filled as (
    select
        g.merchant_id,
        g.cohort_month,
        g.months_since_first_order,
        g.cohort_size,
        coalesce(a.active_customers, 0) as active_customers,
        coalesce(a.orders, 0) as orders,
        coalesce(a.net_revenue, 0) as net_revenue,
        g.currency,
        s.ad_spend as cohort_month_ad_spend
    from grid as g
    left join activity as a
        on a.merchant_id = g.merchant_id and a.cohort_month = g.cohort_month
        and a.months_since_first_order = g.months_since_first_order
    left join spend as s on s.merchant_id = g.merchant_id and s.spend_month = g.cohort_month
),

measures as (
    select
        filled.*,
        sum(net_revenue) over (
            partition by merchant_id, cohort_month order by months_since_first_order
        ) / cohort_size as cum_net_revenue_per_customer,
        active_customers::numeric / cohort_size as retention_rate,
        cohort_month_ad_spend / cohort_size as cac
    from filled
)

select
    merchant_id,
    cohort_month,
    months_since_first_order,
    cohort_size,
    active_customers,
    orders,
    round(net_revenue, 2) as net_revenue,
    round(cum_net_revenue_per_customer, 4) as cum_net_revenue_per_customer,
    round(retention_rate, 4) as retention_rate,
    round(cac, 4) as cac,
    case when cac > 0 then round(cum_net_revenue_per_customer / cac, 4) end as ltv_to_cac,
    case when cac > 0 then cum_net_revenue_per_customer >= cac end as payback_reached,
    currency,
    now() as dbt_updated_at
from measures
