-- depends_on: {{ source('raw', 'attentive_email_sent') }}
-- Webhook rows carry no id: a delivery is identified by message, subscriber and timestamp.
{% set raw %}
select
    merchant_id,
    md5('email_sent|' || coalesce(message_id, '') || '|' || coalesce(subscriber_external_id, '') || '|' || "timestamp"::text)
        as event_key,
    "timestamp" as occurred_at,
    message_id,
    message_name,
    upper(message_type) as message_type,
    upper(message_channel) as message_channel,
    subscriber_external_id,
    lower(nullif(trim(subscriber_email), '')) as email,
    subscriber_phone as phone,
    null::text as link_url,
    _airbyte_extracted_at
from ({{ raw_union('attentive_email_sent') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, event_key', '_airbyte_extracted_at desc') }}
