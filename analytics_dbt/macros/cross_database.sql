{#-
  The project's PostgreSQL-only SQL, each piece behind adapter.dispatch (docs/scaling.md): `postgres__` is what
  runs today; `default__` is what another adapter (a warehouse profile) gets — standard SQL where there is one
  (QUALIFY, which Snowflake, BigQuery and Databricks read), else a compile error naming the macro to write for
  that adapter, never silently different numbers. Staging is the only layer reading the sources' JSON, and reads
  it only through these macros; tests/analytics/test_dbt_project.py keeps PostgreSQL-only syntax from creeping
  back into the models.
-#}

{#- Keep the newest version of each key: `order_by` decides (e.g. updated_at desc, _airbyte_extracted_at desc). -#}
{% macro dedupe(relation_sql, partition_by, order_by) -%}
{{ return(adapter.dispatch('dedupe', 'analytics')(relation_sql, partition_by, order_by)) }}
{%- endmacro %}

{% macro postgres__dedupe(relation_sql, partition_by, order_by) %}
select distinct on ({{ partition_by }}) *
from ({{ relation_sql }}) as d
order by {{ partition_by }}, {{ order_by }}
{% endmacro %}

{% macro default__dedupe(relation_sql, partition_by, order_by) %}
select *
from ({{ relation_sql }}) as d
qualify row_number() over (partition by {{ partition_by }} order by {{ order_by }}) = 1
{% endmacro %}

{#- The local calendar date of a timestamp in the IANA timezone held by the column (or literal) `tz`. -#}
{% macro local_date(ts, tz) -%}
{{ return(adapter.dispatch('local_date', 'analytics')(ts, tz)) }}
{%- endmacro %}

{% macro postgres__local_date(ts, tz) -%}
(({{ ts }}) at time zone {{ tz }})::date
{%- endmacro %}

{% macro default__local_date(ts, tz) -%}
{{ not_ported('local_date') }}
{%- endmacro %}

{#- A JSON value's member at `path` (a list of keys), as text (null when absent). -#}
{% macro json_text(column, path) -%}
{{ return(adapter.dispatch('json_text', 'analytics')(column, path)) }}
{%- endmacro %}

{% macro postgres__json_text(column, path) -%}
({{ column }}{% for key in path %} {{ '->>' if loop.last else '->' }} {{ sql_str(key) }}{% endfor %})
{%- endmacro %}

{% macro default__json_text(column, path) -%}
{{ not_ported('json_text') }}
{%- endmacro %}

{#- A JSON member at `path` as a number when it is a JSON number, else null (strings are not parsed). -#}
{% macro json_number(column, path) -%}
{{ return(adapter.dispatch('json_number', 'analytics')(column, path)) }}
{%- endmacro %}

{% macro postgres__json_number(column, path) -%}
(case when jsonb_typeof({{ column }}{% for key in path %} -> {{ sql_str(key) }}{% endfor %}) = 'number'
    then ({{ postgres__json_text(column, path) }})::numeric end)
{%- endmacro %}

{% macro default__json_number(column, path) -%}
{{ not_ported('json_number') }}
{%- endmacro %}

{#- The sum of the numeric member `key` over the elements of a JSON array (0 when empty or null), counting only
    the elements for which `where` holds: SQL over the element, written with json_text(element, [...]). -#}
{% macro json_array_sum(array_column, key, where=none, element='e') -%}
{{ return(adapter.dispatch('json_array_sum', 'analytics')(array_column, key, where, element)) }}
{%- endmacro %}

{% macro postgres__json_array_sum(array_column, key, where, element) -%}
(select coalesce(sum(({{ postgres__json_text(element, [key]) }})::numeric), 0)
 from jsonb_array_elements(coalesce({{ array_column }}, '[]')) as {{ element }}
 {%- if where %} where {{ where }}{% endif %})
{%- endmacro %}

{% macro default__json_array_sum(array_column, key, where, element) -%}
{{ not_ported('json_array_sum') }}
{%- endmacro %}

{#- `cross join` of each row with the entries of its JSON object `column`, as `alias`.key / `alias`.value (text). -#}
{% macro json_object_entries_join(column, alias) -%}
{{ return(adapter.dispatch('json_object_entries_join', 'analytics')(column, alias)) }}
{%- endmacro %}

{% macro postgres__json_object_entries_join(column, alias) -%}
cross join lateral jsonb_each_text({{ column }}) as {{ alias }}
{%- endmacro %}

{% macro default__json_object_entries_join(column, alias) -%}
{{ not_ported('json_object_entries_join') }}
{%- endmacro %}

{#- A planner or memory setting for the model's session (`local`: its transaction only). Settings are
    PostgreSQL's own: on another adapter they mean nothing and are left out. -#}
{% macro session_set(name, value, local=false) -%}
{{ return(adapter.dispatch('session_set', 'analytics')(name, value, local)) }}
{%- endmacro %}

{% macro postgres__session_set(name, value, local) -%}
set {{ 'local ' if local else '' }}{{ name }} = {{ sql_str(value) }}
{%- endmacro %}

{% macro default__session_set(name, value, local) -%}
select 1
{%- endmacro %}

{% macro not_ported(name) -%}
{{ exceptions.raise_compiler_error("macro " ~ name ~ " has no implementation for the " ~ adapter.type()
    ~ " adapter: write " ~ adapter.type() ~ "__" ~ name ~ " in macros/cross_database.sql (docs/scaling.md)") }}
{%- endmacro %}
