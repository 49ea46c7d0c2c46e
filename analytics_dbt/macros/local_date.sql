{#- The local calendar date of a timestamptz in the merchant's IANA timezone column. -#}
{% macro local_date(ts, tz) -%}
(({{ ts }}) at time zone {{ tz }})::date
{%- endmacro %}
