-- Names for campaign_or_flow_id across providers (Klaviyo campaigns and flows, Attentive messages).
select merchant_id, 'klaviyo' as provider, campaign_id as campaign_or_flow_id, 'campaign' as message_type,
    campaign_name as campaign_or_flow_name, now() as dbt_updated_at
from {{ ref('stg_klaviyo__campaigns') }}
union all
select merchant_id, 'klaviyo', flow_id, 'flow', flow_name, now()
from {{ ref('stg_klaviyo__flows') }}
union all
select merchant_id, 'attentive', message_id,
    case max(message_type) when 'JOURNEY' then 'flow' else 'campaign' end, max(message_name), now()
from (
    select merchant_id, message_id, message_type, message_name from {{ ref('stg_attentive__sms_sent') }}
    union all
    select merchant_id, message_id, message_type, message_name from {{ ref('stg_attentive__email_sent') }}
) as a
where message_id is not null
group by merchant_id, message_id
