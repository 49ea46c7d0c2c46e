-- depends_on: {{ ref('fct_orders') }}
{{ engagement_mart('sms') }}
