{#-
  Marketing channel of a web session, first matching rule wins (documented in docs/metrics.md):
  paid_search  gclid, or utm_medium cpc/ppc/paid_search/sem from a search engine source
  paid_social  utm_medium paid_social/paid/cpc/cpm from facebook/instagram/meta/tiktok/pinterest, or fbclid with a paid medium
  email        utm_medium email
  sms          utm_medium sms
  affiliate    utm_medium affiliate
  other_paid   any other utm_medium cpc/ppc/paid*/display
  organic_social  fbclid without a paid medium, or a referrer on a social network
  organic_search  referrer on a search engine
  referral     any other external referrer, or utm_medium referral
  direct       nothing of the above
-#}
{% macro session_channel(utm_source, utm_medium, referrer_host, fbclid, gclid) -%}
case
    when {{ gclid }} is not null
        or (lower({{ utm_medium }}) in ('cpc', 'ppc', 'paid_search', 'sem')
            and lower({{ utm_source }}) in ('google', 'adwords', 'bing', 'microsoft')) then 'paid_search'
    when lower({{ utm_medium }}) in ('paid_social', 'paid', 'cpc', 'cpm', 'ppc')
        and lower({{ utm_source }}) in ('facebook', 'fb', 'instagram', 'ig', 'meta', 'tiktok', 'pinterest') then 'paid_social'
    when lower({{ utm_medium }}) = 'email' then 'email'
    when lower({{ utm_medium }}) = 'sms' then 'sms'
    when lower({{ utm_medium }}) = 'affiliate' then 'affiliate'
    when lower({{ utm_medium }}) in ('cpc', 'ppc', 'cpm', 'display') or lower({{ utm_medium }}) like 'paid%' then 'other_paid'
    when {{ fbclid }} is not null
        or {{ referrer_host }} ~ '(^|\.)(facebook|instagram|tiktok|pinterest|twitter|x|linkedin|youtube|reddit)\.com$'
        then 'organic_social'
    when {{ referrer_host }} ~ '(^|\.)(google|bing|duckduckgo|yahoo|ecosia|baidu|yandex)\.[a-z.]+$' then 'organic_search'
    when {{ referrer_host }} is not null or lower({{ utm_medium }}) = 'referral' then 'referral'
    else 'direct'
end
{%- endmacro %}
