"""Django's error reports (the technical 500 page, mailed reports, any reporter built on ExceptionReporter)
with the request's secrets hidden, not only the POST parameters and variables views mark sensitive.

Django's own filter hides marked POST parameters and variables and settings named like secrets. It shows
the URL with its query (the OAuth callback's authorization code and state), every GET parameter, every
cookie but Django's session cookie (Clerk's `__session` token among them) and any request object in a frame
as its repr, path and query included. Here all of those go through the one URL rule of config/logging.py,
and on the routes whose query string is secret (the OAuth callback, the webhooks) every POST parameter is
hidden too. Like Django's filter, this one is active only with DEBUG off.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, QueryDict
from django.views import debug

from config.logging import SECRET_QUERY_PARAMETERS, SECRET_QUERY_PATHS, redact_path, redact_url

# Cookies that are credentials: Clerk's session token and Django's CSRF secret.
_SECRET_COOKIES = frozenset({"csrftoken", "__client_uat"})
# META entries that carry the URL or its query.
_URL_META = ("QUERY_STRING", "RAW_URI", "REQUEST_URI", "HTTP_REFERER")


def _secret_route(request: HttpRequest) -> bool:
    return bool(SECRET_QUERY_PATHS.match(getattr(request, "path_info", "") or ""))


class SafeExceptionReporterFilter(debug.SafeExceptionReporterFilter):
    def get_safe_get_parameters(self, request: HttpRequest) -> QueryDict:
        """request.GET with every secret value starred (all of them on the OAuth callback and webhooks)."""
        get = request.GET
        if not self.is_active(request):
            return get
        cleansed = get.copy()
        hide_all = _secret_route(request)
        for name in cleansed:
            if hide_all or name.lower() in SECRET_QUERY_PARAMETERS:
                cleansed.setlist(name, [self.cleansed_substitute])
        return cleansed

    def get_post_parameters(self, request):
        post = super().get_post_parameters(request)
        if request is None or not self.is_active(request):
            return post
        hide_all = _secret_route(request)
        cleansed = post.copy()
        for name in cleansed:
            if hide_all or name.lower() in SECRET_QUERY_PARAMETERS:
                cleansed[name] = self.cleansed_substitute
        return cleansed

    def get_safe_request_meta(self, request):
        meta = super().get_safe_request_meta(request)
        if not self.is_active(request):
            return meta
        path = getattr(request, "path_info", "")
        for name in _URL_META:
            if isinstance(meta.get(name), str) and meta[name] != self.cleansed_substitute:
                meta[name] = redact_url(meta[name]) if name != "QUERY_STRING" else redact_url(f"{path}?{meta[name]}")
        if "PATH_INFO" in meta and isinstance(meta["PATH_INFO"], str):
            meta["PATH_INFO"] = redact_path(meta["PATH_INFO"])
        return meta

    def get_safe_cookies(self, request):
        cookies = super().get_safe_cookies(request)
        if not self.is_active(request):
            return cookies
        for name in cookies:
            if name == settings.CLERK_SESSION_COOKIE or name.startswith("__session") or name in _SECRET_COOKIES:
                cookies[name] = self.cleansed_substitute
        return cookies

    def cleanse_special_types(self, request, value):
        # A request in a frame (Django's, or DRF's wrapping one) is shown by its repr: method, path and query.
        wrapped = getattr(value, "_request", None) if not isinstance(value, HttpRequest) else value
        if isinstance(wrapped, HttpRequest) and self.is_active(request):
            return f"<{type(value).__name__}: {wrapped.method} {redact_url(wrapped.get_full_path())!r}>"
        return super().cleanse_special_types(request, value)


class SafeExceptionReporter(debug.ExceptionReporter):
    """ExceptionReporter whose URL and GET section go through the filter (Django shows them as they came)."""

    def get_traceback_data(self):
        data = super().get_traceback_data()
        request = self.request
        if request is not None and self.filter.is_active(request):
            get_parameters = getattr(self.filter, "get_safe_get_parameters", None)
            if get_parameters is not None:
                data["request_GET_items"] = get_parameters(request).items()
            data["request_insecure_uri"] = redact_url(data.get("request_insecure_uri", ""))
        return data
