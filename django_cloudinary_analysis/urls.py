"""URLs a site includes: the webhook endpoint for async analyses."""

from __future__ import annotations

from django.urls import path

app_name = "cloudinary_analysis"

urlpatterns: list = []
