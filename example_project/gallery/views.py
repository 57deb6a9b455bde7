"""The example's home page: every photo and product with what was found."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from gallery.models import Photo, Product
from gallery.report import field_reports


def home(request: HttpRequest) -> HttpResponse:
    """List photos and products with verdict, quality, text and tags."""
    items = [
        {"object": obj, "kind": "photo", "reports": field_reports(obj)}
        for obj in Photo.objects.prefetch_related("tags")
    ] + [
        {"object": obj, "kind": "product", "reports": field_reports(obj)}
        for obj in Product.objects.all()
    ]
    return render(request, "gallery/home.html", {"items": items})
