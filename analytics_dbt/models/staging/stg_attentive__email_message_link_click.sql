-- depends_on: {{ source('raw', 'attentive_email_message_link_click') }}
{{ stg_attentive_message_event('email_message_link_click', has_link_url=true) }}
