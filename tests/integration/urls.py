"""A site with everything the app offers: admin, REST API and webhook."""

from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls")),
    path("cloudinary-analysis/", include("django_cloudinary_analysis.urls")),
]
