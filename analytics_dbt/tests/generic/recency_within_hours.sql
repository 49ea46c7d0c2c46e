{#- The newest value of a timestamp column is at most `hours` old (an empty model passes). -#}
{% test recency_within_hours(model, column_name, hours=48) %}
select max({{ column_name }}) as newest
from {{ model }}
having max({{ column_name }}) < now() - interval '{{ hours | int }} hours'
{% endtest %}
