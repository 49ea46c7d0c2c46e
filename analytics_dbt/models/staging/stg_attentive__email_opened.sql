-- depends_on: {{ source('raw', 'attentive_email_opened') }}
{{ stg_attentive_message_event('email_opened') }}
