-- depends_on: {{ source('raw', 'facebook_marketing_campaigns') }}
{% set raw %}
select
    merchant_id,
    id as campaign_id,
    account_id,
    name as campaign_name,
    objective,
    status,
    effective_status,
    daily_budget,
    created_time,
    updated_time,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('facebook_marketing_campaigns') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, campaign_id', 'updated_time desc nulls last, _airbyte_extracted_at desc') }}
