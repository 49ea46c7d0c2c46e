"""Content-Security-Policy on every response.

Pages load scripts and styles from our own origin only (vendored Chart.js and htmx, JSON data in
`<script type="application/json">`), so the strict policy needs no nonce. Django admin and the Swagger
UI at /api/docs/ use inline script and style; they get a relaxed policy instead of none.

`form-action 'self'` also stops a form whose POST we answer with a redirect to another origin (Chromium
checks every hop). A page whose forms must reach another origin (the Connectors page: "Connect Meta Ads"
redirects to Meta's consent page) names exactly those origins on its response, with `allow_form_action`;
only that page's policy lists them (docs/csp.md).
"""

from __future__ import annotations

from django.conf import settings

FORM_ACTION_ATTR = "csp_form_action_origins"


def allow_form_action(response, origins):
    """Let this one page's forms (and the redirects they get) reach `origins` besides our own."""
    setattr(response, FORM_ACTION_ATTR, tuple(origins))
    return response


def with_form_action(policy: str, origins) -> str:
    """`policy` with these origins added to its form-action directive (none there: nothing to widen)."""
    if not origins:
        return policy
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    for i, directive in enumerate(directives):
        name, _, sources = directive.partition(" ")
        if name.lower() == "form-action":
            kept = sources.split()
            if "'none'" in (s.lower() for s in kept):
                continue  # the operator forbade every form: not ours to undo
            directives[i] = " ".join(["form-action", *kept, *(o for o in origins if o not in kept)])
    return "; ".join(directives)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        self.strict = settings.CSP_POLICY
        self.relaxed = settings.CSP_RELAXED_POLICY
        self.relaxed_prefixes = tuple(settings.CSP_RELAXED_PATH_PREFIXES)

    def __call__(self, request):
        response = self.get_response(request)
        if "Content-Security-Policy" not in response:
            relaxed = request.path.startswith(self.relaxed_prefixes)
            policy = self.relaxed if relaxed else self.strict
            response["Content-Security-Policy"] = with_form_action(policy, getattr(response, FORM_ACTION_ATTR, ()))
        return response
