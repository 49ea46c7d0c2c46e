{#- Attribution weights of one model add up to exactly 1 for every conversion. -#}
{% test weights_sum_to_one(model, column_name, group_by=['merchant_id', 'order_id'], tolerance=0.000001) %}
select {{ group_by | join(', ') }}, sum({{ column_name }}) as total_weight
from {{ model }}
group by {{ group_by | join(', ') }}
having abs(sum({{ column_name }}) - 1) > {{ tolerance }}
{% endtest %}
