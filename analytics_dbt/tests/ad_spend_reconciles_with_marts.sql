-- Ad spend in the summary marts is exactly the spend of fct_ad_spend_daily, per merchant and date (and per
-- channel in fct_channel_daily): a join that fans out rows, or a day counted twice, fails here.
{%- set scope = built_merchants_condition(['fct_ad_spend_daily']) %}
with facts as (
    select merchant_id, date_day, sum(spend) as spend
    from {{ ref('fct_ad_spend_daily') }}
    where {{ scope }}
    group by 1, 2
),

summary as (
    select merchant_id, date_day, ad_spend as spend
    from {{ ref('fct_daily_summary') }}
    where ad_spend <> 0 and {{ scope }}
),

channels as (
    select merchant_id, date_day, sum(spend) as spend
    from {{ ref('fct_channel_daily') }}
    where {{ scope }}
    group by 1, 2
    having sum(spend) <> 0
)

select
    coalesce(f.merchant_id, s.merchant_id, c.merchant_id) as merchant_id,
    coalesce(f.date_day, s.date_day, c.date_day) as date_day,
    f.spend as fact_spend,
    s.spend as summary_spend,
    c.spend as channel_spend
from facts as f
full outer join summary as s on s.merchant_id = f.merchant_id and s.date_day = f.date_day
full outer join channels as c
    on c.merchant_id = coalesce(f.merchant_id, s.merchant_id) and c.date_day = coalesce(f.date_day, s.date_day)
where coalesce(f.spend, 0) <> coalesce(s.spend, 0) or coalesce(f.spend, 0) <> coalesce(c.spend, 0)
