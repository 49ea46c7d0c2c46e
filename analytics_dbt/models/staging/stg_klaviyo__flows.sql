-- depends_on: {{ source('raw', 'klaviyo_flows') }}
{% set raw %}
select
    merchant_id,
    id as flow_id,
    attributes ->> 'name' as flow_name,
    attributes ->> 'status' as status,
    attributes ->> 'trigger_type' as trigger_type,
    coalesce((attributes ->> 'archived')::boolean, false) as is_archived,
    updated,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('klaviyo_flows') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, flow_id', 'updated desc nulls last, _airbyte_extracted_at desc') }}
