"""URLs a site includes: the webhook endpoint for async analyses."""

from __future__ import annotations

from django.urls import path

from django_cloudinary_analysis import webhooks

app_name = "cloudinary_analysis"

urlpatterns = [
    path("webhook/", webhooks.webhook, name="webhook"),
]
