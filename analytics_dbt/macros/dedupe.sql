{#- A SQL string literal (single quotes doubled). -#}
{% macro sql_str(value) -%}
'{{ value | string | replace("'", "''") }}'
{%- endmacro %}

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
