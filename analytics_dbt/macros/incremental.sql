{#- The newest value of `column` this incremental model holds for one merchant ('-infinity' when none). -#}
{% macro watermark(column, merchant_id, extra_where=none) -%}
(select coalesce(max({{ column }}), '-infinity'::timestamptz) from {{ this }}
 where merchant_id = {{ merchant_id | int }}{% if extra_where %} and {{ extra_where }}{% endif %})
{%- endmacro %}

{#- `<merchant_id column> = X and <column> > watermark(X)` for every active merchant, OR-ed ('false' when none). -#}
{% macro newer_than_watermark(merchant_col, column, target_column=none, extra_where=none) -%}
{%- set merchants = var('merchants', []) -%}
{%- if merchants | length == 0 -%}false{%- else -%}
({% for m in merchants %}({{ merchant_col }} = {{ m['id'] | int }} and {{ column }} > {{ watermark(target_column or column, m['id'], extra_where) }}){% if not loop.last %} or {% endif %}{% endfor %})
{%- endif -%}
{%- endmacro %}
