-- depends_on: {{ source('raw', 'attentive_unsubscribed') }}
{{ stg_attentive_subscription_event('unsubscribed') }}
