-- depends_on: {{ source('raw', 'klaviyo_campaigns') }}
{% set raw %}
select
    merchant_id,
    id as campaign_id,
    {{ json_text('attributes', ['name']) }} as campaign_name,
    {{ json_text('attributes', ['status']) }} as status,
    coalesce({{ json_text('attributes', ['channel']) }}, 'email') as channel,
    ({{ json_text('attributes', ['send_time']) }})::timestamptz as send_time,
    coalesce(({{ json_text('attributes', ['archived']) }})::boolean, false) as is_archived,
    updated_at,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('klaviyo_campaigns') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, campaign_id', 'updated_at desc nulls last, _airbyte_extracted_at desc') }}
