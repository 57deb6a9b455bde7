"""Backends run one analysis type on one file: Cloudinary, local or memory."""

from __future__ import annotations

from django_cloudinary_analysis.backends.base import Backend, Media, get_backend

__all__ = ["Backend", "Media", "get_backend"]
