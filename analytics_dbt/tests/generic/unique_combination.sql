{#- No two rows share the same values of `columns` (the model's grain).
    When a unique index on exactly these columns exists (the big incremental models create one), PostgreSQL
    already guarantees it and the test checks that the index is there instead of scanning millions of rows. -#}
{% test unique_combination(model, columns) %}
{%- set enforced = false %}
{%- if execute and model.schema and model.identifier %}
    {%- set probe %}
        select count(*)
        from pg_index as i
        join pg_class as c on c.oid = i.indrelid
        join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname = '{{ model.schema }}' and c.relname = '{{ model.identifier }}'
            and i.indisunique and i.indpred is null
            and (select array_agg(a.attname::text order by a.attname)
                 from pg_attribute as a where a.attrelid = c.oid and a.attnum = any(i.indkey))
                = array[{% for col in columns | sort %}'{{ col }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[]
    {%- endset %}
    {%- set result = run_query(probe) %}
    {%- set enforced = result is not none and result.rows | length > 0 and result.rows[0][0] > 0 %}
{%- endif %}
{%- if enforced %}
-- enforced by a unique index on ({{ columns | join(', ') }})
select {{ columns | join(', ') }}, 0 as n from {{ model }} where false
{%- else %}
select {{ columns | join(', ') }}, count(*) as n
from {{ model }}
group by {{ columns | join(', ') }}
having count(*) > 1
{%- endif %}
{% endtest %}
