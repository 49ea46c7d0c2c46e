-- depends_on: {{ source('raw', 'klaviyo_metrics') }}
{% set raw %}
select
    merchant_id,
    id as metric_id,
    {{ json_text('attributes', ['name']) }} as metric_name,
    {{ json_text('attributes', ['integration', 'name']) }} as integration_name,
    {{ json_text('attributes', ['integration', 'category']) }} as integration_category,
    updated,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('klaviyo_metrics') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, metric_id', 'updated desc nulls last, _airbyte_extracted_at desc') }}
