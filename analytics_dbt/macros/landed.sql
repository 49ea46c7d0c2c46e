{#-
  Reading the landed layer (analytics/landing.py): one shared table per raw table, `merchant_id` and `_load_id`
  in front of the raw columns, filled by the app's load step before each build. What a model has read is
  recorded per input in landed._model_watermarks after each run (landing.watermarks_record), so an incremental
  model reads exactly the rows landed since: by `_load_id`, through the stores that had a load since (the
  `_loads` ledger, index (table_name, last_load_id)), then the (merchant_id, _load_id) index. Nothing here grows
  with the number of stores except the active stores' ids, one integer each.
-#}

{% macro landed_schema() -%}landed{%- endmacro %}

{#- The highest _load_id this build may read: what had landed when it started. Loads run only before a build,
    never during one, one at a time (analytics/landing.py), so it is the newest ledger row's: one probe of the
    ledger's primary key, however long the ledger. (Not a var: dbt parses the whole project again whenever its vars
    change, seconds every build.) -#}
{% macro landed_through() -%}
(select coalesce((select last_load_id from {{ landed_schema() }}._loads order by id desc limit 1), 0))
{%- endmacro %}

{#- What this model has read of `input` (a raw table, or a model), as a _load_id (0: nothing yet). -#}
{% macro read_through(input) -%}
(select coalesce(max(load_id), 0) from {{ landed_schema() }}._model_watermarks
 where model = {{ sql_str(this.identifier) }} and input = {{ sql_str(input) }})
{%- endmacro %}

{#- `column` is one of the active stores (the var `merchants`). -#}
{% macro active_merchant(column) -%}
{{ column }} = any('{ {%- for m in var('merchants', []) %}{{ m['id'] | int }}{% if not loop.last %},{% endif %}{% endfor -%} }'::integer[])
{%- endmacro %}

{#- Rows of `alias` (a staging model `input` over the raw table `table`) landed after what this model has read of
    it: the stores that had a load since, then their rows after it. -#}
{% macro loaded_since_last_run(alias, input, table) -%}
({{ alias }}.merchant_id in (
    select l.merchant_id from {{ landed_schema() }}._loads as l
    where l.table_name = {{ sql_str(table) }} and l.last_load_id > {{ read_through(input) }}
 )
 and {{ alias }}._load_id > {{ read_through(input) }} and {{ alias }}._load_id < 9223372036854775807)
{%- endmacro %}

{#- The active stores' landed rows of one raw table. In an incremental model: only those landed since this model
    last read the table. A table model also stops at this build's high-water mark; a view does not (its SQL
    would keep the number). -#}
{% macro landed(table) -%}
select r.*
from {{ source('raw', table) }} as r
where {{ active_merchant('r.merchant_id') }}
{%- if model.config.materialized != 'view' %}
    and r._load_id <= {{ landed_through() }}
{%- endif %}
{%- if is_incremental() %}
    and r.merchant_id in (
        select l.merchant_id from {{ landed_schema() }}._loads as l
        where l.table_name = {{ sql_str(table) }} and l.last_load_id > {{ read_through(table) }}
    )
    and r._load_id > {{ read_through(table) }}
{%- endif %}
{%- endmacro %}

{#- Every active store's landed rows of one raw table, whatever the model has read (bounded like `landed`). -#}
{% macro landed_all(table) -%}
select r.*
from {{ source('raw', table) }} as r
where {{ active_merchant('r.merchant_id') }}
{%- if model.config.materialized != 'view' %}
    and r._load_id <= {{ landed_through() }}
{%- endif %}
{%- endmacro %}
