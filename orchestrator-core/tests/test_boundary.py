"""The error boundary (orchestrator.boundary): every httpx exception is mapped or excluded
with a reason, the status table, the one Retry-After parser, and redaction before cutting."""

from __future__ import annotations

import email.utils
import json
import math
import ssl
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator import boundary
from orchestrator.boundary import (
    DEFAULT_TLS_HINT,
    EXCERPT_LIMIT,
    STATUS_ERRORS,
    TRANSPORT_ERRORS,
    UNMAPPED,
    body_excerpt,
    error_class_for_status,
    error_for_status,
    is_transient_status,
    map_transport_error,
    mapped_transport_errors,
    retry_after_from,
    token_count,
)
from orchestrator.config import ProviderConfig, Secret
from orchestrator.errors import (
    AuthenticationError,
    ContextLengthError,
    InvalidRequestError,
    ModelNotFoundError,
    PermissionDeniedError,
    ProviderError,
    ProviderTimeoutError,
    QuotaExceededError,
    RateLimitError,
    ServiceUnavailableError,
    TransportConfigurationError,
    TransportError,
)
from orchestrator.providers import base
from orchestrator.providers.base import BaseProvider
from orchestrator.testing import LoopbackServer
from orchestrator.types import GenerationParams

pytestmark = pytest.mark.anyio

# -- the httpx map is complete ------------------------------------------------------------


def _subclasses(cls: type[BaseException]) -> Iterator[type[BaseException]]:
    yield cls
    for sub in cls.__subclasses__():
        yield from _subclasses(sub)


def _httpx_exceptions() -> set[type[BaseException]]:
    """Every exception class httpx defines: HTTPError's tree plus the other public ones."""
    found = {c for c in _subclasses(httpx.HTTPError) if c.__module__.startswith("httpx")}
    found |= {
        value
        for value in vars(httpx).values()
        if isinstance(value, type) and issubclass(value, Exception)
    }
    return found


def _instance(cls: type[BaseException]) -> BaseException:
    request = httpx.Request("GET", "https://api.example/v1/models")
    if cls is httpx.HTTPStatusError:
        response = httpx.Response(503, request=request, text="down")
        return httpx.HTTPStatusError("503", request=request, response=response)
    if issubclass(cls, httpx.RequestError):
        return cls("boom", request=request)  # type: ignore[call-arg]
    try:
        return cls()
    except TypeError:
        return cls("boom")


def test_every_httpx_exception_is_mapped_or_excluded_with_a_reason() -> None:
    mapped_by_status = {httpx.HTTPStatusError}
    for cls in sorted(_httpx_exceptions(), key=lambda c: c.__name__):
        covered = cls in TRANSPORT_ERRORS or cls in mapped_by_status
        assert covered != (cls in UNMAPPED), (
            f"httpx.{cls.__name__} must be in exactly one of TRANSPORT_ERRORS and UNMAPPED"
        )
        if cls in UNMAPPED:
            assert UNMAPPED[cls].strip(), f"httpx.{cls.__name__} is excluded without a reason"
            if cls is not httpx.HTTPError:
                assert map_transport_error(_instance(cls), "p") is None
        else:
            mapped = map_transport_error(_instance(cls), "p")
            assert isinstance(mapped, ProviderError), f"httpx.{cls.__name__} is not mapped"
            assert mapped.provider == "p"
            assert "; " in mapped.message, f"httpx.{cls.__name__}'s error gives no hint"


def test_a_future_httpx_subclass_maps_like_its_closest_parent() -> None:
    class FancyReadTimeout(httpx.ReadTimeout):
        pass

    mapped = map_transport_error(FancyReadTimeout("slow"), "p")
    assert isinstance(mapped, ProviderTimeoutError) and mapped.transient


@pytest.mark.parametrize(
    ("exc", "expected", "transient"),
    [
        (httpx.ConnectTimeout("t"), ProviderTimeoutError, True),
        (httpx.ReadTimeout("t"), ProviderTimeoutError, True),
        (httpx.PoolTimeout("t"), ProviderTimeoutError, True),
        (httpx.ConnectError("refused"), TransportError, True),
        (httpx.ReadError("reset"), TransportError, True),
        (httpx.RemoteProtocolError("disconnected"), TransportError, True),
        (httpx.ProxyError("407"), TransportError, True),
        (httpx.DecodingError("bad gzip"), TransportError, True),
        (httpx.LocalProtocolError("illegal header"), TransportError, False),
        (httpx.UnsupportedProtocol("ftp"), TransportConfigurationError, False),
        (httpx.TooManyRedirects("loop"), TransportConfigurationError, False),
        (httpx.InvalidURL("bad"), TransportConfigurationError, False),
    ],
)
def test_transport_classes_and_transience(
    exc: Exception, expected: type[ProviderError], transient: bool
) -> None:
    mapped = map_transport_error(exc, "p")
    assert type(mapped) is expected
    assert mapped.transient is transient


def test_non_httpx_exceptions_are_not_mapped() -> None:
    assert map_transport_error(KeyError("x"), "p") is None
    assert map_transport_error(ValueError("x"), "p") is None
    assert map_transport_error(KeyboardInterrupt(), "p") is None


def test_http_status_error_uses_the_status_table() -> None:
    request = httpx.Request("GET", "https://api.example/v1")
    response = httpx.Response(
        429, request=request, headers={"Retry-After": "3", "x-request-id": "r1"}, text="slow"
    )
    mapped = map_transport_error(
        httpx.HTTPStatusError("429", request=request, response=response), "p"
    )
    assert isinstance(mapped, RateLimitError)
    assert (mapped.status_code, mapped.retry_after, mapped.request_id) == (429, 3.0, "r1")


# -- defect 18: the three cases the issue names ---------------------------------------------


class _Provider(BaseProvider):
    """A minimal provider whose one call is a GET through the pooled client."""

    def __init__(self, config: ProviderConfig, **kwargs: object) -> None:
        super().__init__(config, **kwargs)  # type: ignore[arg-type]
        self.calls = 0

    async def fetch(self, url: str) -> str:
        async def once() -> str:
            self.calls += 1
            response = await self.http_client().get(url)
            return response.text

        return await self._retry_with_backoff(once)

    async def generate(self, prompt: str, params: GenerationParams | None = None) -> str:
        return await self.fetch(prompt)

    async def health_check(self) -> bool:
        return True


def _config(**values: object) -> ProviderConfig:
    return ProviderConfig.model_validate(
        {"name": "p", "max_retries": 2, "backoff_base": 0, "backoff_max": 0, **values}
    )


async def test_broken_gzip_body_is_a_transient_transport_error() -> None:
    """httpx.DecodingError (a broken gzip body) used to escape as a plugin bug."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, headers={"Content-Encoding": "gzip"}, content=b"\x1f\x8b not really gzip"
        )

    provider = _Provider(_config(), transport=httpx.MockTransport(handler))
    async with provider:
        with pytest.raises(TransportError, match="could not be decoded") as info:
            await provider.fetch("https://api.example/v1")
    assert info.value.transient and info.value.provider == "p"
    assert isinstance(info.value.__cause__, httpx.DecodingError)
    assert provider.calls == 3  # transient: retried twice


async def test_unsupported_protocol_is_a_configuration_error_not_retried() -> None:
    provider = _Provider(_config())
    async with provider:
        with pytest.raises(TransportConfigurationError, match="https://") as info:
            await provider.fetch("ftp://api.example/v1")
    assert not info.value.transient
    assert isinstance(info.value.__cause__, httpx.UnsupportedProtocol)
    assert provider.calls == 1


def test_certificate_verify_failure_as_the_cause_is_not_transient() -> None:
    cause = ssl.SSLCertVerificationError(
        1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"
    )
    try:
        try:
            raise cause
        except ssl.SSLError as exc:
            raise httpx.ConnectError(str(exc)) from exc
    except httpx.ConnectError as exc:
        mapped = map_transport_error(exc, "p")
    assert isinstance(mapped, TransportConfigurationError) and not mapped.transient
    assert "CA bundle" in mapped.message and "check base_url and the network" not in mapped.message
    custom = map_transport_error(httpx.ConnectError("CERTIFICATE_VERIFY_FAILED"), "p", tls_hint="X")
    assert custom is not None and custom.message.endswith("; X")


@pytest.fixture(scope="module")
def tls_server() -> Iterator[LoopbackServer]:
    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        raise AssertionError("the handshake must fail first")  # pragma: no cover

    with LoopbackServer(app, tls=True) as server:
        yield server


async def test_untrusted_certificate_over_a_real_socket(tls_server: LoopbackServer) -> None:
    """A server whose CA the client does not trust: one attempt, a CA-bundle hint."""
    provider = _Provider(_config())
    async with provider:
        with pytest.raises(TransportConfigurationError) as info:
            await provider.fetch(tls_server.base_url + "/v1")
    assert provider.calls == 1
    assert not info.value.transient
    assert DEFAULT_TLS_HINT in info.value.message


# -- the context manager ---------------------------------------------------------------------


def test_mapped_transport_errors_raises_the_typed_error_from_the_original() -> None:
    original = httpx.ReadTimeout("slow")
    with (
        pytest.raises(ProviderTimeoutError) as info,
        mapped_transport_errors("p", what="Acme chat", request_id="r9"),
    ):
        raise original
    assert info.value.__cause__ is original
    assert info.value.message.startswith("Acme chat: Request timed out")
    assert info.value.request_id == "r9"


def test_mapped_transport_errors_lets_other_exceptions_through() -> None:
    with pytest.raises(KeyError), mapped_transport_errors("p"):
        raise KeyError("a plugin bug")


def test_base_keeps_map_transport_error() -> None:
    """The router and plugins import it from providers.base: same answers as the boundary."""
    exc = httpx.DecodingError("bad gzip")
    from_base = base.map_transport_error(exc, "p")
    assert type(from_base) is type(map_transport_error(exc, "p")) is TransportError


# -- statuses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "transient"),
    [
        (400, InvalidRequestError, False),
        (401, AuthenticationError, False),
        (402, QuotaExceededError, False),
        (403, PermissionDeniedError, False),
        (404, ModelNotFoundError, False),
        (408, ProviderTimeoutError, True),
        (413, ContextLengthError, False),
        (422, InvalidRequestError, False),
        (429, RateLimitError, True),
        (500, ServiceUnavailableError, True),
        (503, ServiceUnavailableError, True),
        (599, ServiceUnavailableError, True),
        (409, ProviderError, False),
        (302, ProviderError, False),
    ],
)
def test_status_table(status: int, expected: type[ProviderError], transient: bool) -> None:
    error = error_for_status(status, f"Acme answered {status}", provider="p", request_id="r")
    assert type(error) is expected
    assert error.transient is transient is is_transient_status(status)
    assert error_class_for_status(status) is expected
    assert (error.status_code, error.provider, error.request_id) == (status, "p", "r")
    assert "; " in error.message  # a default hint


def test_status_table_keys_are_client_errors() -> None:
    assert all(400 <= status < 500 for status in STATUS_ERRORS)


def test_vendor_overrides() -> None:
    error = error_for_status(
        404,
        "Acme answered 404",
        provider="p",
        hints={ModelNotFoundError: "list the models with acme models"},
    )
    assert error.message == "Acme answered 404; list the models with acme models"
    error = error_for_status(504, "m", provider="p", error_class=ProviderTimeoutError, hint="")
    assert type(error) is ProviderTimeoutError and error.message == "m" and error.transient
    assert not error_for_status(503, "m", provider="p", transient=False).transient


def test_error_for_status_reads_retry_after() -> None:
    error = error_for_status(429, "m", provider="p", headers={"Retry-After": "2.5"})
    assert error.retry_after == 2.5


def test_body_is_redacted_before_it_is_cut() -> None:
    """Defect 11: a key echoed across the 200-character cut kept its first characters."""
    key = Secret("sk-live-0123456789abcdefghijklmnopqrstuvwxyz")
    body = "x" * (EXCERPT_LIMIT - 20) + f" {key} is invalid " + "y" * 50
    assert key[:8] in body[:EXCERPT_LIMIT] and key not in body[:EXCERPT_LIMIT]  # it straddles
    error = error_for_status(401, "Acme answered 401", provider="p", body=body)
    assert key[:8] not in str(error) and "***" in str(error)
    excerpt = body_excerpt(body.encode())
    assert len(excerpt) <= EXCERPT_LIMIT and key[:8] not in excerpt


@given(st.one_of(st.none(), st.text(), st.binary()), st.integers(min_value=1, max_value=300))
def test_excerpt_is_bounded(body: str | bytes | None, limit: int) -> None:
    assert len(body_excerpt(body, limit)) <= limit


# -- Retry-After -----------------------------------------------------------------------------


def _http_date(offset: float) -> str:
    return email.utils.formatdate(time.time() + offset, usegmt=True)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (None, None),
        ({}, None),
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "0.25"}, 0.25),
        ({"Retry-After": " 3 "}, 3.0),
        ({"retry-after-ms": "1500"}, 1.5),
        ({"Retry-After-Ms": "250", "Retry-After": "9"}, 0.25),
        ({"retry-after-ms": "soon", "Retry-After": "9"}, 9.0),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "-5"}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"Retry-After": "1e400"}, None),
        ({"Retry-After": "1_000"}, None),
        ({"retry-after-ms": "-1"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),
    ],
)
def test_retry_after_forms(headers: dict[str, str] | None, expected: float | None) -> None:
    assert retry_after_from(headers) == expected


def test_retry_after_http_dates() -> None:
    assert 20 < (retry_after_from({"Retry-After": _http_date(30)}) or 0) <= 31
    naive = (datetime.now(UTC) + timedelta(seconds=60)).strftime("%a, %d %b %Y %H:%M:%S")
    assert 50 < (retry_after_from({"Retry-After": naive}) or 0) <= 61  # no zone: UTC
    assert retry_after_from(httpx.Headers({"RETRY-AFTER": _http_date(-30)})) == 0.0


@given(st.dictionaries(st.sampled_from(["Retry-After", "retry-after-ms", "x"]), st.text()))
def test_retry_after_never_raises_and_is_finite(headers: dict[str, str]) -> None:
    value = retry_after_from(headers)
    assert value is None or (math.isfinite(value) and value >= 0)


# -- token counts ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        ("12", 12),
        (4.0, 4),
        (0, 0),
        ("n/a", None),
        (True, None),
        (-1, None),
        (1.5, None),
        (float("inf"), None),
        ([1], None),
        (None, None),
        ("١٢", None),
    ],
)
def test_token_count(value: object, expected: int | None) -> None:
    assert token_count(value) == expected


def test_module_docstring_names_every_public_name() -> None:
    assert boundary.__doc__ is not None
    for name in (
        "retry_after_from",
        "error_for_status",
        "map_transport_error",
        "mapped_transport_errors",
        "TRANSPORT_ERRORS",
        "STATUS_ERRORS",
    ):
        assert name in boundary.__doc__, name


def test_the_contract_kit_reads_the_same_table() -> None:
    from orchestrator.testing.contract import ERROR_STATUSES, STREAM_ERROR_STATUSES

    assert dict(ERROR_STATUSES) == {
        400: InvalidRequestError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        422: InvalidRequestError,
        429: RateLimitError,
        500: ServiceUnavailableError,
        503: ServiceUnavailableError,
    }
    assert all(error_class_for_status(status) is cls for status, cls in STREAM_ERROR_STATUSES)


# -- json_loads: msgspec's speed, the standard library's results ---------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()  # any size: msgspec and json both give exact ints
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_json_values, st.booleans(), st.booleans())
def test_json_loads_gives_what_json_loads_gives(
    value: object, ascii_only: bool, as_bytes: bool
) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    data: str | bytes = text.encode() if as_bytes else text
    decoded = boundary.json_loads(data)
    assert decoded == json.loads(data)
    assert type(decoded) is type(json.loads(data))


@pytest.mark.parametrize(
    "data",
    [
        '{"a": NaN, "b": Infinity}',  # msgspec refuses what json accepts
        '"\\ud800"',  # a lone surrogate
        "1e400",  # beyond a double: json gives inf
        "123456789012345678901234567890",
        '{"k": 1, "k": 2}',
        "[1]".encode("utf-8-sig"),  # a BOM
        '["é"]'.encode("utf-16"),
    ],
)
def test_json_loads_edge_cases_match_the_standard_library(data: str | bytes) -> None:
    expected, decoded = json.loads(data), boundary.json_loads(data)
    assert repr(decoded) == repr(expected)


@pytest.mark.parametrize("data", ["{", "[1] x", b"\xff", "[" * 100_000 + "]" * 100_000])
def test_json_loads_raises_what_json_loads_raises(data: str | bytes) -> None:
    with pytest.raises((ValueError, RecursionError)) as ours:
        boundary.json_loads(data)
    with pytest.raises((ValueError, RecursionError)) as theirs:
        json.loads(data)
    assert type(ours.value) is type(theirs.value)
