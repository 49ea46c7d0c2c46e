{#- Per order, attributed revenue adds up to the order's net revenue exactly (tolerance 0 by default: revenue is
    split in whole cents), and every revenue order is present. -#}
{% test attributed_revenue_equals_net_revenue(model, column_name, orders=none, tolerance=0) %}
{%- set orders_rel = orders if orders is not none else ref('fct_orders') %}
with attributed as (
    select merchant_id, order_id, sum({{ column_name }}) as attributed
    from {{ model }}
    group by 1, 2
)
select o.merchant_id, o.order_id, o.net_revenue, a.attributed
from {{ orders_rel }} as o
full outer join attributed as a on a.merchant_id = o.merchant_id and a.order_id = o.order_id
where (o.is_revenue_order or o.order_id is null)
    and (a.order_id is null or o.order_id is null or abs(o.net_revenue - a.attributed) > {{ tolerance }})
{% endtest %}
