-- depends_on: {{ source('raw', 'attentive_sms_sent') }}
{{ stg_attentive_message_event('sms_sent') }}
