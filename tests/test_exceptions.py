"""The exception hierarchy: classes, defaults and what the task layer reads."""

from __future__ import annotations

import pickle

import pytest

from django_cloudinary_analysis import exceptions as exc_module
from django_cloudinary_analysis.exceptions import (
    AnalysisError,
    APIError,
    AuthError,
    ConfigurationError,
    InvalidParameters,
    NetworkError,
    NotFoundError,
    RateLimitError,
    RequestTimeout,
    ServerError,
    SourceError,
    UnexpectedResponse,
    UnknownAnalysisType,
    UnsupportedAnalysis,
    UserError,
)

API_ERRORS = [
    UserError,
    AuthError,
    NotFoundError,
    RateLimitError,
    ServerError,
    RequestTimeout,
    NetworkError,
    UnexpectedResponse,
]


def test_every_error_is_an_analysis_error():
    for name in dir(exc_module):
        obj = getattr(exc_module, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, AnalysisError), name


@pytest.mark.parametrize("cls", API_ERRORS)
def test_api_errors_share_a_base(cls):
    assert issubclass(cls, APIError)


@pytest.mark.parametrize(
    ("cls", "retryable", "status"),
    [
        (UserError, False, "failed"),
        (AuthError, False, "failed"),
        (NotFoundError, False, "failed"),
        (RateLimitError, True, "failed"),
        (ServerError, True, "failed"),
        (RequestTimeout, True, "failed"),
        (NetworkError, True, "failed"),
        (UnexpectedResponse, False, "failed"),
        (ConfigurationError, False, "failed"),
        (InvalidParameters, False, "failed"),
        (UnsupportedAnalysis, False, "skipped"),
        (SourceError, False, "skipped"),
    ],
)
def test_class_defaults(cls, retryable, status):
    error = cls("x")
    assert error.retryable is retryable
    assert error.status == status
    assert error.code == cls.default_code


def test_builtin_bases_for_callers_that_catch_them():
    assert issubclass(ConfigurationError, ValueError)
    assert issubclass(InvalidParameters, ValueError)
    assert issubclass(UnknownAnalysisType, InvalidParameters)
    assert issubclass(UnknownAnalysisType, KeyError)


def test_attributes_and_text():
    error = UserError(
        "missing parameters",
        status_code=400,
        category="user_error",
        code="MA_00001",
        details={"parameters": ["uri"]},
        request_id="r1",
        retry_after=None,
    )
    assert (error.message, error.status_code, error.category) == (
        "missing parameters",
        400,
        "user_error",
    )
    assert (error.code, error.details, error.request_id) == (
        "MA_00001",
        {"parameters": ["uri"]},
        "r1",
    )
    assert str(error) == "missing parameters (HTTP 400, MA_00001)"
    assert str(NetworkError("refused")) == "refused"
    assert str(APIError()) == "APIError"


def test_unknown_analysis_type_is_not_quoted():
    assert str(UnknownAnalysisType("unknown analysis type 'x'")) == (
        "unknown analysis type 'x'"
    )


def test_rate_limit_and_unexpected_extras():
    assert RateLimitError("x").limits == []
    limits = [object()]
    error = RateLimitError("x", limits=limits, retry_after=12.5, status_code=429)
    assert error.limits is limits
    assert error.retry_after == 12.5
    assert UnexpectedResponse("x", retryable=True).retryable is True
    assert UnexpectedResponse("x").retryable is False
    # An instance flag does not change the class default.
    assert UnexpectedResponse.retryable is False


def test_errors_survive_pickling_for_celery():
    error = ServerError("boom", status_code=503, code="MA_500", request_id="r")
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(copy, ServerError)
    assert (copy.message, copy.status_code, copy.code) == ("boom", 503, "MA_500")
    limited = pickle.loads(pickle.dumps(RateLimitError("q", retry_after=3.0)))  # noqa: S301
    assert limited.retry_after == 3.0
    flagged = pickle.loads(pickle.dumps(UnexpectedResponse("x", retryable=True)))  # noqa: S301
    assert flagged.retryable is True


def test_the_failed_responses_headers_and_body_are_kept():
    assert (APIError("x").headers, APIError("x").body) == (None, None)
    error = ServerError(
        "boom", status_code=502, headers={"content-type": "text/html"}, body="<html>"
    )
    assert error.headers == {"content-type": "text/html"} and error.body == "<html>"
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert (copy.headers, copy.body) == (error.headers, error.body)
    assert str(error) == "boom (HTTP 502, server_error)"  # the text is unchanged
