-- depends_on: {{ source('raw', 'attentive_email_sent') }}
{{ stg_attentive_message_event('email_sent') }}
