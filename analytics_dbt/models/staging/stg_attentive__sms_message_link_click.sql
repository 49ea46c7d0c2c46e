-- depends_on: {{ source('raw', 'attentive_sms_message_link_click') }}
{{ stg_attentive_message_event('sms_message_link_click', has_link_url=true) }}
