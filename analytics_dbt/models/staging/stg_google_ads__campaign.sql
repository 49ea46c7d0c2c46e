-- depends_on: {{ source('raw', 'google_ads_campaign') }}
{% set raw %}
select
    merchant_id,
    customer_id::text as account_id,
    campaign_id::text as campaign_id,
    campaign_name,
    campaign_status,
    campaign_advertising_channel_type as advertising_channel_type,
    segments_date as date_day,
    segments_ad_network_type as ad_network_type,
    segments_device as device,
    coalesce(metrics_clicks, 0) as clicks,
    coalesce(metrics_impressions, 0) as impressions,
    -- cost stays in micros: a campaign-day is the sum of its segment rows, divided once (rounding each
    -- row to cents first would drift by up to half a cent per row)
    coalesce(metrics_cost_micros, 0) as cost_micros,
    coalesce(metrics_conversions, 0) as conversions,
    coalesce(metrics_conversions_value, 0) as conversions_value,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('google_ads_campaign') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, account_id, campaign_id, date_day, ad_network_type, device', '_airbyte_extracted_at desc') }}
