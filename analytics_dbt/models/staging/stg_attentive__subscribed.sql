-- depends_on: {{ source('raw', 'attentive_subscribed') }}
{{ stg_attentive_subscription_event('subscribed') }}
