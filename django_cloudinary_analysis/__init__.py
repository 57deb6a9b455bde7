"""Analyse, tag and moderate Django uploads with the Cloudinary Analyze API."""

from __future__ import annotations

__version__ = "0.1.0"
