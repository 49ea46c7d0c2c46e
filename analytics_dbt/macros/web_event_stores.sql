{#- The stores with any pixel event (stg_web_events): fct_sessions reads their sessions from web_events only,
    never from the legacy web_sessions table. One index probe per active store. -#}
{% macro web_event_stores() -%}
select m.merchant_id from {{ ref('dim_merchants') }} as m
where exists (select 1 from {{ ref('stg_web_events') }} as e where e.merchant_id = m.merchant_id)
{%- endmacro %}
