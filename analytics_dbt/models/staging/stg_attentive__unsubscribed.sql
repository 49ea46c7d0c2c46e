-- depends_on: {{ source('raw', 'attentive_unsubscribed') }}
{% set raw %}
select
    merchant_id,
    md5('unsubscribed|' || coalesce(subscriber_external_id, '') || '|' || coalesce(subscription_channel, '') || '|'
        || "timestamp"::text) as event_key,
    "timestamp" as occurred_at,
    upper(subscription_type) as subscription_type,
    upper(subscription_channel) as subscription_channel,
    creative_name,
    subscriber_external_id,
    lower(nullif(trim(subscriber_email), '')) as email,
    subscriber_phone as phone,
    _airbyte_extracted_at
from ({{ raw_union('attentive_unsubscribed') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, event_key', '_airbyte_extracted_at desc') }}
