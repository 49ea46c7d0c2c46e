{#- `column > bound` for a bound computed by a subquery (a watermark), written as a range closed by 'infinity':
    PostgreSQL estimates a lone `> (subquery)` at a third of the table and scans all of it; a range with one
    unknown end is estimated at 0.5 %, so the few rows newer than a watermark come through the column's index. -#}
{% macro later_than(column, bound, inclusive=false) -%}
({{ column }} {{ '>=' if inclusive else '>' }} {{ bound }} and {{ column }} < 'infinity'::timestamptz)
{%- endmacro %}

{#- Rows of an upstream model stamped after this model's newest row: what changed since this model's last run. -#}
{% macro changed_since_last_run(column='dbt_updated_at') -%}
{{ later_than(column, "(select coalesce(max(dbt_updated_at), '-infinity'::timestamptz) from " ~ this ~ ")") }}
{%- endmacro %}
