{#- The newest value of `column` this incremental model holds for one merchant ('-infinity' when none). -#}
{% macro watermark(column, merchant_id, extra_where=none) -%}
(select coalesce(max({{ column }}), '-infinity'::timestamptz) from {{ this }}
 where merchant_id = {{ merchant_id | int }}{% if extra_where %} and {{ extra_where }}{% endif %})
{%- endmacro %}

{#- How far back an incremental run re-reads raw rows before its watermark on `_airbyte_extracted_at` (var
    raw_commit_lag_hours, default 3). A sync commits its rows minutes to an hour after it extracted them (Airbyte
    types and dedupes a stream into its final table at the end of the sync; webhook writers commit in
    parallel), so a build can see rows extracted at 01:40 while rows extracted at 01:10 are still uncommitted:
    comparing with the newest extraction held, or with the time of the last build, would skip those forever.
    The overlap is re-read every run; every model merges on its unique key (delete+insert, dedupe on the key),
    so a row read twice counts once. Set it above the longest sync you run. -#}
{% macro raw_commit_lag() -%}
interval '{{ var("raw_commit_lag_hours", 3) | float }} hours'
{%- endmacro %}

{#- `<merchant_id column> = X and <column> > watermark(X) - raw_commit_lag()` for every active merchant, OR-ed
    ('false' when none). Only for raw extraction times (`_airbyte_extracted_at`), never for dbt_updated_at. -#}
{% macro newer_than_watermark(merchant_col, column, target_column=none, extra_where=none) -%}
{%- set merchants = var('merchants', []) -%}
{%- if merchants | length == 0 -%}false{%- else -%}
({% for m in merchants %}({{ merchant_col }} = {{ m['id'] | int }} and {{ later_than(column, watermark(target_column or column, m['id'], extra_where) ~ ' - ' ~ raw_commit_lag()) }}){% if not loop.last %} or {% endif %}{% endfor %})
{%- endif -%}
{%- endmacro %}

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
