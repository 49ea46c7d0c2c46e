"""The API docs page (drf-spectacular's Swagger UI).

Its own module: config.api is imported while DRF reads its settings, and drf_spectacular.views imports those.
"""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.views import SpectacularSwaggerView


class SwaggerView(SpectacularSwaggerView):
    """The API docs page. DRF answers OPTIONS with metadata rendered by the view's renderer, and this view's
    only renderer is an HTML template that has nothing to render it with (TemplateDoesNotExist, a 500).
    OPTIONS here says which methods the page allows, with no body."""

    def options(self, request, *args, **kwargs):
        return HttpResponse(status=200, headers={"Allow": ", ".join(self.allowed_methods)})
