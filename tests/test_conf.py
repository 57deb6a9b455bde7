"""Settings object: defaults, per-access reads, credentials resolution."""

from __future__ import annotations

import sys
import types

import pytest

from django_cloudinary_analysis.conf import DEFAULTS, app_settings
from django_cloudinary_analysis.exceptions import ConfigurationError


def test_defaults_and_overrides(settings):
    settings.CLOUDINARY_ANALYSIS = {}
    assert DEFAULTS["MAX_ATTEMPTS"] == app_settings.MAX_ATTEMPTS
    settings.CLOUDINARY_ANALYSIS = {"MAX_ATTEMPTS": 2}
    assert app_settings.MAX_ATTEMPTS == 2  # read on every access
    with pytest.raises(AttributeError):
        app_settings.NOT_A_SETTING  # noqa: B018


def test_user_dict_is_not_mutated(settings):
    user = {"API_KEY": "k"}
    settings.CLOUDINARY_ANALYSIS = user
    app_settings.credentials  # noqa: B018
    assert user == {"API_KEY": "k"}


def test_credentials_from_settings_then_url(settings, monkeypatch):
    settings.CLOUDINARY_ANALYSIS = {
        "CLOUD_NAME": "c",
        "API_KEY": "k",
        "API_SECRET": "s",
    }
    monkeypatch.setenv("CLOUDINARY_URL", "cloudinary://k2:s2@c2")
    assert app_settings.credentials.cloud_name == "c"
    settings.CLOUDINARY_ANALYSIS = {}
    creds = app_settings.credentials
    assert (creds.cloud_name, creds.api_key, creds.source) == (
        "c2",
        "k2",
        "CLOUDINARY_URL",
    )
    assert "s2" not in repr(creds)


def test_malformed_url_names_the_problem_not_the_secret(settings, monkeypatch):
    settings.CLOUDINARY_ANALYSIS = {}
    monkeypatch.setenv("CLOUDINARY_URL", "https://k:topsecret@c")
    with pytest.raises(ConfigurationError) as info:
        app_settings.credentials  # noqa: B018
    assert "topsecret" not in str(info.value)


def test_pycloudinary_config_is_the_fallback(settings, monkeypatch):
    settings.CLOUDINARY_ANALYSIS = {}
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    cfg = types.SimpleNamespace(
        cloud_name="sdk-cloud", api_key="sk", api_secret="ss", oauth_token=None
    )
    fake = types.ModuleType("cloudinary")
    fake.config = lambda: cfg
    monkeypatch.setitem(sys.modules, "cloudinary", fake)
    creds = app_settings.credentials
    assert creds.cloud_name == "sdk-cloud" and creds.complete
    assert creds.source == "cloudinary.config()"


def test_missing_credentials_are_named(settings, monkeypatch):
    settings.CLOUDINARY_ANALYSIS = {"CLOUD_NAME": "c"}
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    monkeypatch.setitem(sys.modules, "cloudinary", None)
    creds = app_settings.credentials
    assert not creds.complete
    assert creds.missing() == ["API_KEY", "API_SECRET"]
