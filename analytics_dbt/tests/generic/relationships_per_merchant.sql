{#- Like `relationships`, within one merchant: every non-null `column_name` has a row with the same merchant_id
    and `field` in `to` (ids are only unique per shop). Looks each child row up through the parent's
    (merchant_id, field) index, so a test of a few rows written by an incremental build stays cheap. -#}
{% test relationships_per_merchant(model, column_name, to, field) %}
with child as (
    select merchant_id, {{ column_name }} from {{ model }}
)

select child.merchant_id, child.{{ column_name }}
from child
where child.{{ column_name }} is not null
    and not exists (
        select 1 from {{ to }} as parent
        where parent.merchant_id = child.merchant_id and parent.{{ field }} = child.{{ column_name }}
    )
{% endtest %}
