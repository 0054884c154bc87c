"""The chat operation: one ``provider.chat()`` call, accounted on success."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from orchestrator._routing.engine import contract_error
from orchestrator._routing.output import check_answer
from orchestrator.events import UsageEvent
from orchestrator.retry import retries_managed_by_caller
from orchestrator.types import Completion

if TYPE_CHECKING:
    from orchestrator._routing.accounting import Ledger
    from orchestrator._routing.call import Call, Lease
    from orchestrator.health import ProviderSlot


class ChatOperation:
    """Asks a provider for a whole answer (bounded by the slot's attempt ``timeout``)."""

    __slots__ = ("ledger",)

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    timeout_message = (
        "Attempt timeout of {:g}s fired; raise add_provider(timeout=...) if the model needs longer"
    )

    @staticmethod
    def timeout(slot: ProviderSlot) -> float | None:
        return slot.timeout

    async def run(self, call: Call, lease: Lease) -> Completion:
        slot = lease.slot
        token = retries_managed_by_caller.set(True)  # the engine retries, not the provider
        try:
            completion = await slot.provider.chat(call.messages, call.params)
        finally:
            retries_managed_by_caller.reset(token)
        if not isinstance(completion, Completion):
            raise contract_error(slot, "chat()", completion, "a Completion")
        usage = completion.usage
        latency = lease.succeeded(None if usage is None else usage.total_tokens)
        cost = self.ledger.account(slot, usage, completion.model)
        calls = completion.tool_calls
        # Built directly: dataclasses.replace costs more than the rest of the router's work.
        completion = Completion(
            completion.text,
            slot.name,
            completion.model,
            "tool_calls" if calls else completion.finish_reason,
            usage,
            completion.request_id,
            completion.latency or latency,
            cost if completion.cost is None else completion.cost,
            completion.extra,
            calls,
        )
        if call.needs:
            # The provider answered (its breaker and bill say so) - but not what was asked.
            try:
                parsed = check_answer(call.params, completion.text, calls)
            except BaseException:
                await self._report(completion)
                raise
            if parsed is not None:
                completion = replace(completion, parsed=parsed)
        if call.hooks is not None and call.request is not None:
            await call.hooks.attempt_success(
                call.request, slot.name, lease.attempt, latency, completion
            )
        if self.ledger.on_usage is not None:
            await self._report(completion)
        return completion

    async def _report(self, completion: Completion) -> None:
        if self.ledger.on_usage is not None:
            await self.ledger.report(
                UsageEvent(
                    completion.provider,
                    completion.model,
                    completion.usage,
                    completion.cost,
                    completion.request_id,
                    "chat",
                )
            )
