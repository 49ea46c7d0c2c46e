-- The sms rows of fct_message_engagement, under the name dashboards and exports have always read.
{{ config(materialized='view') }}
select * from {{ ref('fct_message_engagement') }} where channel = 'sms'
