{#- Per order, attributed revenue adds up to the order's net revenue exactly (tolerance 0 by default: revenue is
    split in whole cents), and every revenue order is present. When a build tests only the rows it wrote, the
    orders checked are the ones it attributed or recomputed. -#}
{% test attributed_revenue_equals_net_revenue(model, column_name, orders=none, tolerance=0) %}
{%- set orders_rel = orders if orders is not none else ref('fct_orders') %}
{%- set changed = changed_rows_condition() %}
with
{%- if changed %}
-- the orders this build attributed or recomputed, with all their rows
checked as (
    select merchant_id, order_id from {{ model }}
    union
    select merchant_id, order_id from {{ orders_rel }} where {{ changed }}
),
{%- endif %}

attributed as (
    select merchant_id, order_id, sum({{ column_name }}) as attributed
    from {{ tested_model_relation() if changed else model }}
    {%- if changed %}
    where (merchant_id, order_id) in (select merchant_id, order_id from checked)
    {%- endif %}
    group by 1, 2
),

orders as (
    select merchant_id, order_id, net_revenue, is_revenue_order
    from {{ orders_rel }}
    {%- if changed %}
    where (merchant_id, order_id) in (select merchant_id, order_id from checked)
    {%- endif %}
)

select o.merchant_id, o.order_id, o.net_revenue, a.attributed
from orders as o
full outer join attributed as a on a.merchant_id = o.merchant_id and a.order_id = o.order_id
where (o.is_revenue_order or o.order_id is null)
    and (a.order_id is null or o.order_id is null or abs(o.net_revenue - a.attributed) > {{ tolerance }})
{% endtest %}
