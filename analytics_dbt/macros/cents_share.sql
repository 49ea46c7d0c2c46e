{#- A touch's share of `amount` in whole cents, by cumulative rounding over the conversion's touches in
    touch_index order: round(amount x weights up to this touch) - round(amount x weights before it). Every
    share is within a cent of amount x weight, and the shares of a conversion add up to exactly `amount`
    (the cumulative weight of the last touch is 1). -#}
{% macro cents_share(amount, weight, partition_by='merchant_id, order_id', order_by='touch_index') -%}
(round({{ amount }} * sum({{ weight }}) over (partition by {{ partition_by }} order by {{ order_by }}), 2)
    - round({{ amount }} * (sum({{ weight }}) over (partition by {{ partition_by }} order by {{ order_by }}) - {{ weight }}), 2))
{%- endmacro %}
