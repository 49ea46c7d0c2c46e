{#- Post-hook: create an index on `columns` (in this order) unless the model already has one. Unlike the
    `indexes` config, which dbt applies only when it creates the relation, this also reaches incremental
    tables built before the index was added, and it lets PostgreSQL pick a free name (a table rebuild briefly
    keeps the old table, and its indexes' names, as a backup). -#}
{% macro ensure_index(columns, unique=false) -%}
do $ensure_index$
begin
    if not exists (
        select 1
        from pg_index as i
        where i.indrelid = {{ sql_str(this | string) }}::regclass
            and i.indpred is null
            and i.indisunique = {{ 'true' if unique else 'false' }}
            and (select array_agg(a.attname::text order by k.ord)
                 from unnest(i.indkey::int2[]) with ordinality as k (attnum, ord)
                 join pg_attribute as a on a.attrelid = i.indrelid and a.attnum = k.attnum)
                = array[{% for c in columns %}'{{ c }}'{% if not loop.last %}, {% endif %}{% endfor %}]::text[]
    ) then
        execute 'create {{ "unique " if unique }}index on ' || {{ sql_str(this | string) }}
            || ' ({{ columns | join(", ") }})';
    end if;
end
$ensure_index$
{%- endmacro %}
