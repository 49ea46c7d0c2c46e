{#- Tests of an incremental model, inside `dbt build`, check the rows this build wrote (dbt_updated_at at or after
    the database's clock when the build started, recorded by record_build_start) rather than the whole table:
    rows an earlier build wrote were tested by that build, and an incremental run only replaces rows whole
    (delete+insert on the model's unique key), so a key the run did not write cannot collide with one it did.
    A relationships test still looks the parent up in the whole parent table. Left unscoped: recency tests
    (they look at the newest row), standalone `dbt test` (the weekly full pass runs it) and every other
    invocation. A test's own `where` config still applies. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set changed = changed_rows_condition() -%}
    {%- if changed -%}
        {%- set where = '(' ~ where ~ ') and ' ~ changed if where else changed -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return('(select * from ' ~ relation ~ ' where ' ~ where ~ ') dbt_subquery') -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}

{#- The condition selecting the rows this build wrote, when the running test checks only those ('' otherwise). -#}
{% macro changed_rows_condition() -%}
    {%- if flags.WHICH == 'build' and changed_rows_testable(model) -%}
{{ later_than('dbt_updated_at', "(select started_at from analytics_dbt_meta.dbt_builds where invocation_id = " ~ sql_str(invocation_id) ~ ")", inclusive=true) }}
    {%- endif -%}
{%- endmacro %}

{#- The whole table of the model the running test is attached to (a test's `model` argument is the scoped subquery). -#}
{% macro tested_model_relation() -%}
    {%- set node = graph.nodes.get(model.get('attached_node')) -%}
    {%- do return(api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias)) -%}
{%- endmacro %}

{#- True when `test_node` is a generic test (other than a recency test) of a model that documents a dbt_updated_at
    column and is incremental, or a view passing one incremental model's rows through with their dbt_updated_at
    (the attribution model views), and that model is built by this invocation (a build selecting only tests
    tests whole tables). Incremental staging tables have no dbt_updated_at and are tested whole. -#}
{% macro changed_rows_testable(test_node) -%}
    {%- set metadata = test_node.get('test_metadata') if test_node is mapping else none -%}
    {%- set attached = test_node.get('attached_node') if test_node is mapping else none -%}
    {%- if not metadata or not attached or metadata.get('name') == 'recency_within_hours'
          or attached not in selected_resources -%}
        {%- do return(false) -%}
    {%- endif -%}
    {%- set parent = graph.nodes.get(attached) -%}
    {%- do return(parent is not none and parent.config.materialized in ('incremental', 'view')
                  and 'dbt_updated_at' in parent.columns) -%}
{%- endmacro %}

{#- on-run-start: a build records when it started by the database's clock, the clock dbt_updated_at is stamped
    with (dbt's own run_started_at comes from another host's clock). Kept 30 days. -#}
{% macro record_build_start() %}
{%- if flags.WHICH == 'build' -%}
create schema if not exists analytics_dbt_meta;
create table if not exists analytics_dbt_meta.dbt_builds (
    invocation_id text primary key,
    started_at timestamptz not null default clock_timestamp()
);
delete from analytics_dbt_meta.dbt_builds where started_at < now() - interval '30 days';
insert into analytics_dbt_meta.dbt_builds (invocation_id) values ({{ sql_str(invocation_id) }});
{%- endif -%}
{% endmacro %}

{#- The reconciliation tests (tests/*.sql) inside `dbt build` check only the merchants whose rows in `model_names`
    (incremental models stamping dbt_updated_at) this build wrote: a merchant none of whose inputs changed
    reconciled when they last did. Whole tables when any of those models is not built by this invocation, and in
    standalone `dbt test` (the weekly full pass). Returns a condition on merchant_id. -#}
{% macro built_merchants_condition(model_names) -%}
    {%- set scoped = namespace(whole=flags.WHICH != 'build') -%}
    {%- for name in model_names if ('model.' ~ project_name ~ '.' ~ name) not in selected_resources -%}
        {%- set scoped.whole = true -%}
    {%- endfor -%}
    {%- if scoped.whole -%}
true
    {%- else -%}
        {%- set started = "(select started_at from analytics_dbt_meta.dbt_builds where invocation_id = "
                          ~ sql_str(invocation_id) ~ ")" -%}
merchant_id in (
    {%- for name in model_names %}
    select merchant_id from {{ ref(name) }} where {{ later_than('dbt_updated_at', started, inclusive=true) }}
    {%- if not loop.last %} union{% endif %}
    {%- endfor %}
)
    {%- endif -%}
{%- endmacro %}
