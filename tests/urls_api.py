"""A site's urls.py that includes only the REST API (for its tests)."""

from __future__ import annotations

from django.urls import include, path

urlpatterns = [
    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls")),
]
