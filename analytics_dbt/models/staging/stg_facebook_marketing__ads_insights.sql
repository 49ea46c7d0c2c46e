-- depends_on: {{ source('raw', 'facebook_marketing_ads_insights') }}
-- Meta restates the last 28 days: every sync re-emits them, the latest extraction wins.
{% set types %}{% for t in var('facebook_conversion_action_types') %}{{ sql_str(t) }}{% if not loop.last %}, {% endif %}{% endfor %}{% endset %}
{% set raw %}
select
    merchant_id,
    account_id,
    account_currency,
    campaign_id,
    campaign_name,
    adset_id,
    ad_id,
    ad_name,
    date_start as date_day,
    coalesce(spend, 0)::numeric(14, 2) as spend,
    coalesce(impressions, 0) as impressions,
    coalesce(clicks, 0) as clicks,
    {{ json_array_sum('actions', 'value', where=json_text('a', ['action_type']) ~ ' in (' ~ types ~ ')', element='a') }}
        as conversions,
    {{ json_array_sum('action_values', 'value', where=json_text('a', ['action_type']) ~ ' in (' ~ types ~ ')', element='a') }}
        as conversions_value,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('facebook_marketing_ads_insights') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, ad_id, date_day', '_airbyte_extracted_at desc') }}
