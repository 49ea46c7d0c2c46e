-- depends_on: {{ source('raw', 'klaviyo_flows') }}
{% set raw %}
select
    merchant_id,
    id as flow_id,
    {{ json_text('attributes', ['name']) }} as flow_name,
    {{ json_text('attributes', ['status']) }} as status,
    {{ json_text('attributes', ['trigger_type']) }} as trigger_type,
    coalesce(({{ json_text('attributes', ['archived']) }})::boolean, false) as is_archived,
    updated,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('klaviyo_flows') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, flow_id', 'updated desc nulls last, _airbyte_extracted_at desc') }}
