-- Platform x account x campaign x day. Spend and platform-reported conversion value are converted from the
-- ad account's currency to the shop currency with the latest rate published on or before the day (rates
-- exist for business days only), falling back to the nearest later rate at the start of history.
-- Incremental: platforms restate recent days (Meta up to 28), so a run rebuilds, for every store whose ad rows
-- or exchange rates landed since the last run, the days from var meta_restatement_days before the newest day
-- held; and every day of a store whose older history arrived since the last run: onboarded after the first
-- build, an ad account connected later, a late restatement. A store with nothing new is not read at all.
-- (merchant, day) is the unique key, so a day is only ever rewritten whole.
{{ config(
    materialized='incremental',
    unique_key=['merchant_id', 'date_day'],
    incremental_strategy='delete+insert',
    on_schema_change='fail',
    post_hook="{{ ensure_index(['merchant_id', 'date_day']) }}",
) }}
-- depends_on: {{ source('raw', 'facebook_marketing_ads_insights') }}
-- depends_on: {{ source('raw', 'google_ads_campaign') }}
-- depends_on: {{ source('raw', 'google_ads_customer') }}
-- depends_on: {{ source('raw', 'exchange_rates_rates') }}
{%- set inputs = ['facebook_marketing_ads_insights', 'google_ads_campaign', 'google_ads_customer', 'exchange_rates_rates'] %}
{%- set since = '' %}
{%- if is_incremental() %}
    {%- set since = "(select coalesce(max(date_day), '-infinity'::date) - " ~ (var('meta_restatement_days') | int)
        ~ " from " ~ this ~ ")" %}
{%- endif %}
with
{%- if since %}
-- The stores with ad rows, ad accounts or rates landed since the last run (the load ledger).
changed_stores as materialized (
    {%- for table in inputs %}
    select l.merchant_id from {{ landed_schema() }}._loads as l
    where l.table_name = {{ sql_str(table) }} and l.last_load_id > {{ read_through(table) }}
    {%- if not loop.last %}
    union{% endif %}
    {%- endfor %}
),

-- Their ad accounts in the rows landed since the last run, and whether any of those rows is older than the
-- window. The filters below use `= any(array(...))` so that they stay plain restrictions, which PostgreSQL
-- pushes below the staging views' dedupe.
raw_accounts as (
    select
        merchant_id,
        'facebook' as platform,
        account_id,
        bool_or(date_start < {{ since }}) as restated_late
    from ({{ landed('facebook_marketing_ads_insights') }}) as r
    group by merchant_id, account_id
    union all
    select
        merchant_id,
        'google_ads' as platform,
        customer_id::text as account_id,
        bool_or(segments_date < {{ since }}) as restated_late
    from ({{ landed('google_ads_campaign') }}) as r
    group by merchant_id, customer_id
),

backfilled as (
    select a.merchant_id
    from raw_accounts as a
    where a.restated_late or not exists (
        select from {{ this }} as t
        where t.merchant_id = a.merchant_id and t.platform = a.platform and t.account_id = a.account_id
    )
),
{%- endif %}

facebook as (
    select
        merchant_id,
        'facebook' as platform,
        account_id,
        campaign_id,
        max(campaign_name) as campaign_name,
        date_day,
        max(account_currency) as account_currency,
        sum(spend) as spend_account_currency,
        sum(impressions) as impressions,
        sum(clicks) as clicks,
        sum(conversions) as conversions,
        sum(conversions_value) as conversions_value_account_currency
    from {{ ref('stg_facebook_marketing__ads_insights') }}
    {%- if since %}
    where (date_day >= {{ since }} and merchant_id = any(array(select merchant_id from changed_stores)))
        or merchant_id = any(array(select merchant_id from backfilled))
    {%- endif %}
    group by merchant_id, account_id, campaign_id, date_day
),

google as (
    select
        c.merchant_id,
        'google_ads' as platform,
        c.account_id,
        c.campaign_id,
        max(c.campaign_name) as campaign_name,
        c.date_day,
        max(a.currency) as account_currency,
        round(sum(c.cost_micros) / 1000000.0, 2) as spend_account_currency,
        sum(c.impressions) as impressions,
        sum(c.clicks) as clicks,
        sum(c.conversions) as conversions,
        sum(c.conversions_value) as conversions_value_account_currency
    from {{ ref('stg_google_ads__campaign') }} as c
    left join {{ ref('stg_google_ads__customer') }} as a on a.merchant_id = c.merchant_id and a.account_id = c.account_id
    {%- if since %}
    where (c.date_day >= {{ since }} and c.merchant_id = any(array(select merchant_id from changed_stores)))
        or c.merchant_id = any(array(select merchant_id from backfilled))
    {%- endif %}
    group by c.merchant_id, c.account_id, c.campaign_id, c.date_day
),

spend as (
    select * from facebook
    union all
    select * from google
),

-- The (store, currency) pairs to convert: ad accounts in another currency than the shop's. Only their rates are
-- read (every store has months of rates in dozens of currencies; most spend needs none).
fx_needed as materialized (
    select distinct s.merchant_id, upper(s.account_currency) as from_currency, m.currency as shop_currency
    from spend as s
    inner join {{ ref('dim_merchants') }} as m on m.merchant_id = s.merchant_id
    where upper(s.account_currency) <> m.currency
),

fx_rates as materialized (
    select r.merchant_id, r.rate_date, r.base_currency, r.currency, r.rate
    from {{ ref('stg_exchange_rates__rates') }} as r
    where r.merchant_id in (select merchant_id from fx_needed)
),

-- Rate from each currency to the shop currency, valid from its date until the next published rate; the
-- earliest rate also covers the days before it.
pair_rates as (
    select
        b.merchant_id,
        b.currency as from_currency,
        b.rate_date,
        q.rate / b.rate as rate,
        row_number() over (partition by b.merchant_id, b.currency order by b.rate_date) as rate_rank,
        lead(b.rate_date) over (partition by b.merchant_id, b.currency order by b.rate_date) as next_rate_date
    from fx_rates as b
    inner join fx_needed as n on n.merchant_id = b.merchant_id and n.from_currency = b.currency
    inner join fx_rates as q
        on q.merchant_id = b.merchant_id and q.rate_date = b.rate_date and q.base_currency = b.base_currency
        and q.currency = n.shop_currency
),

converted as (
    select
        s.*,
        m.currency,
        case
            when coalesce(s.account_currency, m.currency) = m.currency then 1::numeric
            else fx.rate
        end as fx_rate
    from spend as s
    inner join {{ ref('dim_merchants') }} as m on m.merchant_id = s.merchant_id
    left join pair_rates as fx
        on fx.merchant_id = s.merchant_id
        and fx.from_currency = upper(s.account_currency)
        and (fx.rate_rank = 1 or s.date_day >= fx.rate_date)
        and (fx.next_rate_date is null or s.date_day < fx.next_rate_date)
)

select
    merchant_id,
    date_day,
    platform,
    case platform when 'facebook' then 'paid_social' when 'google_ads' then 'paid_search' end as channel,
    account_id,
    campaign_id,
    campaign_name,
    account_currency,
    spend_account_currency,
    fx_rate,
    round(spend_account_currency * fx_rate, 2) as spend,
    currency,
    impressions,
    clicks,
    conversions,
    round(conversions_value_account_currency * fx_rate, 2) as conversions_value,
    now() as dbt_updated_at
from converted
