-- Email and SMS events from Klaviyo and Attentive in one shape. event_type:
--   delivered (Klaviyo Received Email/SMS; Attentive sent: it reports no separate delivery), bounced, opened,
--   clicked, unsubscribed, spam_complaint, subscribed.
-- campaign_or_flow_id: the Klaviyo campaign or flow, or the Attentive message (campaign or journey message).
-- Incremental: new source rows, plus Klaviyo events of profiles (email) or metrics (name) that changed.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'provider', 'message_event_id'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    indexes=[
        {'columns': ['merchant_id', 'provider', 'message_event_id'], 'unique': True},
        {'columns': ['dbt_updated_at']},
    ],
    post_hook=[
        "{{ ensure_index(['merchant_id', 'recipient_id']) }}",
        "{{ ensure_index(['merchant_id', 'event_date']) }}",
        "{{ ensure_index(['merchant_id', 'email']) }}",
    ],
) }}
with klaviyo_types (metric_name, channel, event_type) as (
    values
        ('Received Email', 'email', 'delivered'),
        ('Bounced Email', 'email', 'bounced'),
        ('Dropped Email', 'email', 'bounced'),
        ('Opened Email', 'email', 'opened'),
        ('Clicked Email', 'email', 'clicked'),
        ('Unsubscribed', 'email', 'unsubscribed'),
        ('Marked Email as Spam', 'email', 'spam_complaint'),
        ('Received SMS', 'sms', 'delivered'),
        ('Failed to Deliver SMS', 'sms', 'bounced'),
        ('Clicked SMS', 'sms', 'clicked'),
        ('Unsubscribed from SMS', 'sms', 'unsubscribed'),
        ('Subscribed to List', 'email', 'subscribed'),
        ('Subscribed to SMS', 'sms', 'subscribed')
),

{%- if is_incremental() %}
-- Klaviyo events landed since the last run, and the events of profiles (email) or metrics (name) that changed
-- (`= any(array(...))` reaches a changed profile's events through the (merchant_id, profile_id) index)
changed_profiles as materialized (
    select p.merchant_id, p.profile_id from {{ ref('stg_klaviyo__profiles') }} as p
    where {{ loaded_since_last_run('p', 'stg_klaviyo__profiles', 'klaviyo_profiles') }}
),

klaviyo_changed as (
    select e.merchant_id, e.event_id from {{ ref('stg_klaviyo__events') }} as e
    where {{ loaded_since_last_run('e', 'stg_klaviyo__events', 'klaviyo_events') }}
    union
    select e.merchant_id, e.event_id from {{ ref('stg_klaviyo__events') }} as e
    where e.merchant_id = any(array(select distinct merchant_id from changed_profiles))
        and e.profile_id = any(array(select profile_id from changed_profiles))
        and (e.merchant_id, e.profile_id) in (select merchant_id, profile_id from changed_profiles)
    union
    select e.merchant_id, e.event_id from {{ ref('stg_klaviyo__events') }} as e
    where e.merchant_id in (
        select km.merchant_id from {{ ref('stg_klaviyo__metrics') }} as km
        where {{ loaded_since_last_run('km', 'stg_klaviyo__metrics', 'klaviyo_metrics') }}
    )
),
{%- endif %}

klaviyo as (
    select
        e.merchant_id,
        e.event_id as message_event_id,
        'klaviyo' as provider,
        t.channel,
        t.event_type,
        e.occurred_at,
        case when e.flow_id is not null then 'flow' when e.campaign_id is not null then 'campaign' end as message_type,
        coalesce(e.flow_id, e.campaign_id) as campaign_or_flow_id,
        e.message_id,
        e.profile_id as recipient_id,
        p.email,
        e._airbyte_extracted_at
    from {{ ref('stg_klaviyo__events') }} as e
    inner join {{ ref('stg_klaviyo__metrics') }} as km on km.merchant_id = e.merchant_id and km.metric_id = e.metric_id
    inner join klaviyo_types as t on t.metric_name = km.metric_name
    left join {{ ref('stg_klaviyo__profiles') }} as p on p.merchant_id = e.merchant_id and p.profile_id = e.profile_id
    {%- if is_incremental() %}
    where (e.merchant_id, e.event_id) in (select merchant_id, event_id from klaviyo_changed)
    {%- endif %}
),

attentive as (
    {%- set tables = [
        ('stg_attentive__sms_sent', 'sms', 'delivered'),
        ('stg_attentive__sms_message_link_click', 'sms', 'clicked'),
        ('stg_attentive__email_sent', 'email', 'delivered'),
        ('stg_attentive__email_opened', 'email', 'opened'),
        ('stg_attentive__email_message_link_click', 'email', 'clicked'),
    ] %}
    {%- for model, channel, event_type in tables %}
    select
        merchant_id,
        event_key as message_event_id,
        'attentive' as provider,
        '{{ channel }}' as channel,
        '{{ event_type }}' as event_type,
        occurred_at,
        case message_type when 'JOURNEY' then 'flow' when 'CAMPAIGN' then 'campaign' end as message_type,
        message_id as campaign_or_flow_id,
        message_id,
        subscriber_external_id as recipient_id,
        email,
        _airbyte_extracted_at
    from {{ ref(model) }} as a
    {%- if is_incremental() %}
    where {{ loaded_since_last_run('a', model, model | replace('stg_attentive__', 'attentive_')) }}
    {%- endif %}
    union all
    {%- endfor %}
    {%- for model, event_type in [('stg_attentive__subscribed', 'subscribed'), ('stg_attentive__unsubscribed', 'unsubscribed')] %}
    select
        merchant_id,
        event_key,
        'attentive',
        case subscription_channel when 'EMAIL' then 'email' else 'sms' end,
        '{{ event_type }}',
        occurred_at,
        null,
        null,
        null,
        subscriber_external_id,
        email,
        _airbyte_extracted_at
    from {{ ref(model) }} as a
    {%- if is_incremental() %}
    where {{ loaded_since_last_run('a', model, model | replace('stg_attentive__', 'attentive_')) }}
    {%- endif %}
    {%- if not loop.last %} union all{% endif %}
    {%- endfor %}
),

unioned as (
    select * from klaviyo
    union all
    select * from attentive
)

select
    u.merchant_id,
    u.message_event_id,
    u.provider,
    u.channel,
    u.event_type,
    u.occurred_at,
    {{ local_date('u.occurred_at', 'm.timezone') }} as event_date,
    u.message_type,
    u.campaign_or_flow_id,
    u.message_id,
    u.recipient_id,
    u.email,
    u._airbyte_extracted_at,
    now() as dbt_updated_at
from unioned as u
inner join {{ ref('dim_merchants') }} as m on m.merchant_id = u.merchant_id
