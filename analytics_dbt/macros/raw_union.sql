{#-
  Every active merchant's copy of one raw table, with merchant_id in front.
  With no active merchant it is an empty relation with the raw table's columns and types, so models still
  compile and build. `incremental_on`: on incremental runs read only rows newer than what this model holds
  for that merchant (the column must exist in both).
-#}
{% macro raw_union(table, incremental_on=none) %}
{%- set cols = raw_tables()[table] -%}
{%- set merchants = var('merchants', []) -%}
{%- if merchants | length == 0 %}
select null::integer as merchant_id{% for c in cols %}, null::{{ c[1] }} as {{ adapter.quote(c[0]) }}{% endfor %}
where false
{%- else -%}
{%- for m in merchants %}
select {{ m['id'] | int }}::integer as merchant_id{% for c in cols %}, r.{{ adapter.quote(c[0]) }}{% endfor %}
from {{ adapter.quote(merchant_schema(m)) }}.{{ adapter.quote(table) }} as r
{%- if incremental_on is not none and is_incremental() %}
where r.{{ incremental_on }} > (
    select coalesce(max({{ incremental_on }}), '-infinity'::timestamptz) from {{ this }} where merchant_id = {{ m['id'] | int }}
)
{%- endif %}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endif %}
{% endmacro %}

{% macro merchant_schema(m) -%}
    {%- set key = m['key'] | string -%}
    {%- if not modules.re.match('^[a-z][a-z0-9_]{0,50}$', key) -%}
        {{ exceptions.raise_compiler_error("invalid merchant key " ~ key) }}
    {%- endif -%}
    raw_{{ key }}
{%- endmacro %}

{#- A SQL string literal (single quotes doubled). -#}
{% macro sql_str(value) -%}
'{{ value | string | replace("'", "''") }}'
{%- endmacro %}

{#- Keep the newest version of each key: `order_by` decides (e.g. updated_at desc, _airbyte_extracted_at desc). -#}
{% macro dedupe(relation_sql, partition_by, order_by) %}
select distinct on ({{ partition_by }}) *
from ({{ relation_sql }}) as d
order by {{ partition_by }}, {{ order_by }}
{% endmacro %}

{#- The newest version of each key of a mutable object (newest updated_at, then newest extraction). On
    incremental runs the rows landed since the last run compete with the version already held, so a late
    re-emit of an older version does not win. -#}
{% macro dedupe_versions(raw_sql, key) %}
{%- set order_by = 'updated_at desc nulls last, _airbyte_extracted_at desc' -%}
{%- if is_incremental() %}
with new_rows as (
    {{ raw_sql }}
),

candidates as (
    select * from new_rows
    union all
    select t.* from {{ this }} as t
    where ({{ key }}) in (select {{ key }} from new_rows)
)

{{ dedupe('select * from candidates', key, order_by) }}
{%- else %}
{{ dedupe(raw_sql, key, order_by) }}
{%- endif %}
{% endmacro %}
