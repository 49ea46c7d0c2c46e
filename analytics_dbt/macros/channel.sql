{#-
  Marketing channel of a web session, first matching rule wins (documented in docs/metrics.md):
  paid_search  gclid, or utm_medium cpc/ppc/paid_search/sem from a search engine source
  paid_social  utm_medium paid_social/paid/cpc/cpm from facebook/instagram/meta/tiktok/pinterest, or fbclid with a paid medium
  email        utm_medium email
  sms          utm_medium sms
  affiliate    utm_medium affiliate
  other_paid   any other utm_medium cpc/ppc/paid*/display
  organic_social  fbclid without a paid medium, or a referrer on a social network (var social_referrer_domains)
  organic_search  referrer on a search engine (var search_referrer_domains)
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
    when {{ fbclid }} is not null or {{ referrer_host }} ~ {{ referrer_domain_regex(var('social_referrer_domains')) }}
        then 'organic_social'
    when {{ referrer_host }} ~ {{ referrer_domain_regex(var('search_referrer_domains')) }} then 'organic_search'
    when {{ referrer_host }} is not null or lower({{ utm_medium }}) = 'referral' then 'referral'
    else 'direct'
end
{%- endmacro %}

{#- A regex literal matching a host that is one of `domains` or a subdomain of one (domain suffix, never a
    substring). `name.*` stands for the name under any one- or two-part top-level domain. -#}
{% macro referrer_domain_regex(domains) -%}
{%- set parts = [] -%}
{%- for raw_domain in domains -%}
    {%- set d = raw_domain | string | lower | trim -%}
    {%- if not modules.re.match('^[a-z0-9-]+(\\.[a-z0-9-]+)*(\\.\\*)?$', d) -%}
        {{ exceptions.raise_compiler_error("invalid referrer domain " ~ d) }}
    {%- endif -%}
    {%- if d.endswith('.*') -%}
        {%- do parts.append(d[:-2] | replace('.', '\\.') ~ '\\.[a-z]{2,3}(\\.[a-z]{2})?') -%}
    {%- else -%}
        {%- do parts.append(d | replace('.', '\\.')) -%}
    {%- endif -%}
{%- endfor -%}
'(^|\.)({{ parts | join('|') }})$'
{%- endmacro %}
