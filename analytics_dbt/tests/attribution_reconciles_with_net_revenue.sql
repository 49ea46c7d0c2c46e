-- Under every attribution model, attributed revenue per merchant and order date adds up to the cent to the
-- net revenue of that day's revenue orders, in fct_attribution_daily and in fct_channel_daily: per-row
-- rounding that loses or invents cents fails here (it adds up over a month to visible differences).
{%- set scope = built_merchants_condition(['fct_orders', 'fct_attribution_daily']) %}
{%- set models = ['first_touch', 'last_touch', 'multi_touch_linear', 'position_based', 'time_decay'] %}
with orders as (
    select merchant_id, order_date as date_day, sum(net_revenue) as net_revenue
    from {{ ref('fct_orders') }}
    where is_revenue_order and {{ scope }}
    group by 1, 2
),

attributed as (
    select merchant_id, date_day, attribution_model, sum(attributed_revenue) as attributed
    from {{ ref('fct_attribution_daily') }}
    where {{ scope }}
    group by 1, 2, 3
    {%- for m in models %}
    union all
    select merchant_id, date_day, '{{ m }} (fct_channel_daily)', sum({{ m }}_revenue)
    from {{ ref('fct_channel_daily') }}
    where {{ scope }}
    group by 1, 2
    {%- endfor %}
),

models as (
    select m.name as attribution_model
    from (values {% for m in models %}('{{ m }}'), ('{{ m }} (fct_channel_daily)'){% if not loop.last %}, {% endif %}{% endfor %}) as m (name)
),

expected as (
    select o.merchant_id, o.date_day, m.attribution_model, o.net_revenue
    from orders as o
    cross join models as m
)

select
    coalesce(e.merchant_id, a.merchant_id) as merchant_id,
    coalesce(e.date_day, a.date_day) as date_day,
    coalesce(e.attribution_model, a.attribution_model) as attribution_model,
    e.net_revenue,
    a.attributed
from expected as e
full outer join attributed as a
    on a.merchant_id = e.merchant_id and a.date_day = e.date_day and a.attribution_model = e.attribution_model
where coalesce(e.net_revenue, 0) <> coalesce(a.attributed, 0)
