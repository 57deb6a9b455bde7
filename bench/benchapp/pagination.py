"""The REST API's paginator in the benchmarks: ``?page_size=`` picks the size."""

from __future__ import annotations

from rest_framework.pagination import PageNumberPagination


class SizedPagination(PageNumberPagination):
    """Page numbers with a page size the read-path benchmark chooses."""

    page_size = 10
    page_size_query_param = "page_size"
    max_page_size = 1000
