{#-
  Every active merchant's copy of one raw table, with merchant_id in front.
  Only the merchants whose raw schema holds this table take part: a store installed before its first sync
  has no raw schema yet, and a store that has not connected Klaviyo has no Klaviyo tables. Such a store
  reads as empty for this table (checked per table, against the catalog, when dbt runs the model), so it
  never breaks the build of the stores that have data. With no merchant holding the table it is an empty
  relation with the raw table's columns and types, so models still compile and build.
  A table present but lacking a column the models read stops the model with an error naming the merchant's
  schema (services._affected_merchants tells that store, not every store).
  `incremental_on`: on incremental runs read only rows newer than what this model holds for that merchant, less
  the var raw_commit_lag_hours (macros/incremental.sql: rows commit after they were extracted; the column must
  exist in both).
-#}
{% macro raw_union(table, incremental_on=none) %}
{%- set cols = raw_tables()[table] -%}
{%- set merchants = merchants_with_raw_table(table) -%}
{%- if merchants | length == 0 %}
select null::integer as merchant_id{% for c in cols %}, null::{{ c[1] }} as {{ adapter.quote(c[0]) }}{% endfor %}
where false
{%- else -%}
{%- for m in merchants %}
select {{ m['id'] | int }}::integer as merchant_id{% for c in cols %}, r.{{ adapter.quote(c[0]) }}{% endfor %}
from {{ adapter.quote(merchant_schema(m)) }}.{{ adapter.quote(table) }} as r
{%- if incremental_on is not none and is_incremental() %}
where {{ later_than('r.' ~ incremental_on, watermark(incremental_on, m['id']) ~ ' - ' ~ raw_commit_lag()) }}
{%- endif %}
{% if not loop.last %}union all{% endif %}
{%- endfor %}
{%- endif %}
{% endmacro %}

{#- The active merchants whose raw schema has `table` (all of them while dbt only parses the project). One
    catalog query per model: pg_class / pg_attribute need no privilege on the raw schema, so a schema the
    dbt role cannot read still counts as present and fails loudly (naming the schema) instead of as empty. -#}
{% macro merchants_with_raw_table(table) %}
{%- set merchants = var('merchants', []) -%}
{%- if not execute or merchants | length == 0 -%}
    {%- do return(merchants) -%}
{%- endif -%}
{%- set query -%}
select n.nspname, array_agg(a.attname::text) filter (where a.attnum > 0 and not a.attisdropped)
from pg_catalog.pg_class as c
join pg_catalog.pg_namespace as n on n.oid = c.relnamespace
left join pg_catalog.pg_attribute as a on a.attrelid = c.oid
where c.relname = {{ sql_str(table) }}
    and c.relkind in ('r', 'p', 'v', 'm', 'f')
    and n.nspname in ({% for m in merchants %}{{ sql_str(merchant_schema(m)) }}{% if not loop.last %}, {% endif %}{% endfor %})
group by n.nspname
{%- endset -%}
{%- set found = {} -%}
{%- for row in run_query(query).rows -%}
    {%- do found.update({row[0]: row[1] or []}) -%}
{%- endfor -%}
{%- set present = [] -%}
{%- for m in merchants if merchant_schema(m) in found -%}
    {%- set missing = [] -%}
    {%- for c in raw_tables()[table] if c[0] not in found[merchant_schema(m)] -%}
        {%- do missing.append(c[0]) -%}
    {%- endfor -%}
    {%- if missing -%}
        {{ exceptions.raise_compiler_error("raw table " ~ merchant_schema(m) ~ "." ~ table ~ " lacks the columns "
            ~ missing | join(", ") ~ " (merchant " ~ m['key'] ~ "): its connector is not the version the models expect") }}
    {%- endif -%}
    {%- do present.append(m) -%}
{%- endfor -%}
{%- do return(present) -%}
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
