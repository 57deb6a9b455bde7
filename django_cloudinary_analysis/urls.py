"""URLs a site includes: the webhook endpoint for async analyses, the
uploader's appeal page, and the staff dashboard and audit export."""

from __future__ import annotations

from django.urls import path

from django_cloudinary_analysis import webhooks
from django_cloudinary_analysis.accountability import admin_views
from django_cloudinary_analysis.accountability import views as accountability

app_name = "cloudinary_analysis"

urlpatterns = [
    path("webhook/", webhooks.webhook, name="webhook"),
    path(
        "appeal/<str:content_type>/<str:object_id>/",
        accountability.appeal,
        name="appeal",
    ),
    path("admin/dashboard/", admin_views.dashboard_view, name="dashboard"),
    path("admin/export/", admin_views.export_view, name="export"),
]
