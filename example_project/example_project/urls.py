"""URLs of the example site: home page, admin, APIs, webhook, media in DEBUG."""

from __future__ import annotations

from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path

from gallery.api import router as gallery_api
from gallery.views import home

urlpatterns = [
    path("", home, name="home"),
    path("admin/", admin.site.urls),
    # The site's own API (photos and products with verdicts and tags)…
    path("api/", include(gallery_api.urls)),
    # …and the app's: analyses, object summaries, the moderation queue.
    path("api/analysis/", include("django_cloudinary_analysis.rest_framework.urls")),
    # The webhook Cloudinary posts async results to; WEBHOOK_URL points here.
    path("cloudinary-analysis/", include("django_cloudinary_analysis.urls")),
]

# Uploaded files, served by Django only while DEBUG is on (static() is empty
# otherwise); a real deployment serves MEDIA_ROOT with its web server.
urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)
