-- depends_on: {{ source('raw', 'google_ads_customer') }}
{% set raw %}
select
    merchant_id,
    customer_id::text as account_id,
    customer_descriptive_name as account_name,
    customer_currency_code as currency,
    customer_time_zone as time_zone,
    coalesce(customer_test_account, false) as is_test_account,
    segments_date,
    _airbyte_extracted_at,
    _load_id
from ({{ landed('google_ads_customer') }}) as r
{% endset %}
{{ dedupe(raw, 'merchant_id, account_id', 'segments_date desc nulls last, _airbyte_extracted_at desc') }}
