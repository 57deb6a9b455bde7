"""Paging of the API's lists when the site configures none."""

from __future__ import annotations

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.settings import api_settings

from django_cloudinary_analysis.conf import app_settings


class AnalysisPagination(PageNumberPagination):
    """``?page=`` and ``?page_size=``; the size is ``API_PAGE_SIZE``."""

    page_size_query_param = "page_size"
    max_page_size = 1000

    def __init__(self) -> None:
        self.page_size = app_settings.API_PAGE_SIZE


def pagination_class() -> type[Any] | None:
    """The site's ``DEFAULT_PAGINATION_CLASS``, else ours (None: no paging)."""
    site = api_settings.DEFAULT_PAGINATION_CLASS
    if site is not None:
        return site  # type: ignore[return-value]
    return AnalysisPagination if app_settings.API_PAGE_SIZE else None
