"""Names and numbers from the OpenTelemetry GenAI semantic conventions, and the switches the
OTel contrib instrumentations read from the environment.

Sources: semantic-conventions-genai ``docs/gen-ai/gen-ai-spans.md`` and ``gen-ai-metrics.md``;
opentelemetry-util-genai ``environment_variables.py`` and ``_instruments.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

#: ``gen_ai.client.operation.duration`` and ``...time_to_first_chunk`` (seconds).
DURATION_BUCKETS: tuple[float, ...] = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
#: ``gen_ai.client.token.usage`` (tokens).
TOKEN_BUCKETS: tuple[float, ...] = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip

# Attributes.
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # what PROVIDER_NAME replaced (v1.36.0 and earlier)
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_STREAM = "gen_ai.request.stream"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STOP_SEQUENCES = "gen_ai.request.stop_sequences"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
TOKEN_TYPE = "gen_ai.token.type"  # noqa: S105 - an attribute name
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"

# Metrics.
OPERATION_DURATION = "gen_ai.client.operation.duration"
TOKEN_USAGE = "gen_ai.client.token.usage"  # noqa: S105 - a metric name
TIME_TO_FIRST_CHUNK = "gen_ai.client.operation.time_to_first_chunk"

#: Comma-separated opt-ins; ``gen_ai_latest_experimental`` selects the newest GenAI names.
STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
LATEST_EXPERIMENTAL = "gen_ai_latest_experimental"
#: ``span_only`` / ``span_and_event`` (with the opt-in) record message content on spans.
CAPTURE_MESSAGE_CONTENT = "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"
_CAPTURE_ON_SPANS = frozenset({"span_only", "span_and_event"})


def latest_experimental(env: Mapping[str, str] = os.environ) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the newest GenAI conventions."""
    opted = env.get(STABILITY_OPT_IN, "")
    return LATEST_EXPERIMENTAL in {part.strip() for part in opted.split(",")}


def capture_content_from_env(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the environment opts in to recording message content on spans.

    As in opentelemetry-util-genai: only together with the ``gen_ai_latest_experimental``
    opt-in, and only ``span_only`` or ``span_and_event`` (case-insensitive). Anything else —
    unset, ``false``, the legacy ``true`` (which asks for log events this plugin does not
    emit), ``event_only`` — records none.
    """
    if not latest_experimental(env):
        return False
    return env.get(CAPTURE_MESSAGE_CONTENT, "").strip().lower() in _CAPTURE_ON_SPANS
