"""Settings object (conf.py): defaults, per-access reads, credentials resolution
(credentials.py)."""

from __future__ import annotations

import sys
import types

import pytest

from django_cloudinary_analysis.conf import (
    CREDENTIAL_SOURCES,
    DEFAULTS,
    IMPORT_STRINGS,
    AppSettings,
    app_settings,
    import_setting,
)
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


# -- where credentials come from, in the documented order ---------------------

SOURCES = {
    "CLOUDINARY_ANALYSIS": ("a-cloud", "a-key"),
    "CLOUDINARY_URL": ("u-cloud", "u-key"),
    "CLOUDINARY": ("p-cloud", "p-key"),
    "CLOUDINARY_STORAGE": ("s-cloud", "s-key"),
    "cloudinary.config()": ("sdk-cloud", "sdk-key"),
}


def _configure(settings, monkeypatch, present):
    monkeypatch.delenv("CLOUDINARY_URL", raising=False)
    for name in ("CLOUDINARY_URL", "CLOUDINARY", "CLOUDINARY_STORAGE"):
        if hasattr(settings, name):
            delattr(settings, name)
    settings.CLOUDINARY_ANALYSIS = {}
    cfg = types.SimpleNamespace(
        cloud_name=None, api_key=None, api_secret=None, oauth_token=None
    )
    fake = types.ModuleType("cloudinary")
    fake.config = lambda: cfg
    monkeypatch.setitem(sys.modules, "cloudinary", fake)
    for source in present:
        cloud, key = SOURCES[source]
        if source == "CLOUDINARY_ANALYSIS":
            settings.CLOUDINARY_ANALYSIS = {
                "CLOUD_NAME": cloud,
                "API_KEY": key,
                "API_SECRET": "s",
            }
        elif source == "CLOUDINARY_URL":
            monkeypatch.setenv("CLOUDINARY_URL", f"cloudinary://{key}:s@{cloud}")
        elif source == "CLOUDINARY":  # pycloudinary's Django setting
            settings.CLOUDINARY = {
                "cloud_name": cloud,
                "api_key": key,
                "api_secret": "s",
            }
        elif source == "CLOUDINARY_STORAGE":  # django-cloudinary-storage's
            settings.CLOUDINARY_STORAGE = {
                "CLOUD_NAME": cloud,
                "API_KEY": key,
                "API_SECRET": "s",
            }
        else:
            cfg.cloud_name, cfg.api_key, cfg.api_secret = cloud, key, "s"


@pytest.mark.parametrize("first", range(len(CREDENTIAL_SOURCES)))
def test_credentials_come_from_the_first_complete_source(settings, monkeypatch, first):
    present = CREDENTIAL_SOURCES[first:]
    _configure(settings, monkeypatch, present)
    creds = app_settings.credentials
    assert creds.complete
    assert (creds.cloud_name, creds.api_key) == SOURCES[CREDENTIAL_SOURCES[first]]
    assert creds.source == CREDENTIAL_SOURCES[first]


def test_incomplete_settings_dicts_are_passed_over(settings, monkeypatch):
    _configure(settings, monkeypatch, ["cloudinary.config()"])
    settings.CLOUDINARY = {"cloud_name": "only-a-name"}
    settings.CLOUDINARY_STORAGE = {"CLOUD_NAME": "x", "API_KEY": "k"}
    assert app_settings.credentials.source == "cloudinary.config()"


def test_storage_settings_are_read_without_touching_storages(settings, monkeypatch):
    _configure(settings, monkeypatch, ["CLOUDINARY_STORAGE"])
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "tests.test_checks.AbsoluteURLStorage"},
    }
    assert app_settings.credentials.source == "CLOUDINARY_STORAGE"


# -- typed properties and import strings (one place) --------------------------


def test_every_key_has_a_typed_property():
    for name in DEFAULTS:
        prop = getattr(AppSettings, name, None)
        assert isinstance(prop, property), name
        assert "return" in prop.fget.__annotations__, name


def test_values_come_back_typed(settings):
    settings.CLOUDINARY_ANALYSIS = {
        "MAX_ATTEMPTS": "3",
        "RETRY_BACKOFF": 2,
        "TIMEOUT": 7,
        "API_PAGE_SIZE": "25",
        "QUEUE": "",
    }
    assert app_settings.MAX_ATTEMPTS == 3
    assert app_settings.RETRY_BACKOFF == 2.0
    assert isinstance(app_settings.RETRY_BACKOFF, float)
    assert app_settings.TIMEOUT == (7.0, 7.0)
    assert app_settings.API_PAGE_SIZE == 25
    assert app_settings.QUEUE is None


def test_import_strings_resolve_in_one_place(settings):
    from django.core.exceptions import ImproperlyConfigured

    from django_cloudinary_analysis.backends.memory import MemoryBackend

    assert set(IMPORT_STRINGS) <= set(DEFAULTS)
    settings.CLOUDINARY_ANALYSIS = {
        "BACKEND": "django_cloudinary_analysis.backends.memory.MemoryBackend",
        "API_PERMISSION_CLASSES": [
            "django_cloudinary_analysis.backends.memory.MemoryBackend"
        ],
        "API_OBJECT_FILTER": "nowhere.at_all",
    }
    assert import_setting("BACKEND") is MemoryBackend
    assert import_setting("API_PERMISSION_CLASSES") == [MemoryBackend]
    with pytest.raises(ImproperlyConfigured, match="API_OBJECT_FILTER"):
        import_setting("API_OBJECT_FILTER")
    with pytest.raises(KeyError):
        import_setting("QUEUE")


def test_import_setting_keeps_objects_given_instead_of_paths(settings):
    """Like DRF's settings: a class or callable may be given directly."""
    from django_cloudinary_analysis.backends.memory import MemoryBackend

    def visible(request, queryset):
        return queryset

    settings.CLOUDINARY_ANALYSIS = {
        "API_PERMISSION_CLASSES": [
            MemoryBackend,
            "django_cloudinary_analysis.backends.memory.MemoryBackend",
        ],
        "API_OBJECT_FILTER": visible,
    }
    assert import_setting("API_PERMISSION_CLASSES") == [MemoryBackend] * 2
    assert import_setting("API_OBJECT_FILTER") is visible
    one = "django_cloudinary_analysis.backends.memory.MemoryBackend"
    settings.CLOUDINARY_ANALYSIS = {"API_PERMISSION_CLASSES": one}
    assert [one] == app_settings.API_PERMISSION_CLASSES
