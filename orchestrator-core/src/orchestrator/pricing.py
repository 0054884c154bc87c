"""Prices in roubles and the cost of a call, from the usage the vendor reported.

A :class:`Price` is roubles per 1,000 tokens, prompt and completion separately. Providers
may ship defaults (the class attribute ``prices``, keyed by model); the router's ``prices``
argument overrides them per provider and model. Costs are ``Decimal`` (money is not float).

Vendor plugins ship their published list prices as data, a ``prices.toml`` in the package
(:func:`load_price_list`): every figure with its source and the date of that source, and the
models no authoritative figure was found for. The result, a :class:`PriceList`, is a price
table of the synchronous chat prices; a model it has no figure for keeps ``cost`` null and
is reported once, at WARNING on the ``orchestrator.pricing`` logger, with the config key that
sets its price. ``orchestrator prices`` prints every shipped figure.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.types import Usage

__all__ = [
    "Price",
    "PriceTable",
    "cost_of",
    "find_price",
    "ListedPrice",
    "PriceSource",
    "PriceList",
    "load_price_list",
    "parse_price_list",
    "describe_prices",
]

_THOUSAND = Decimal(1000)
logger = logging.getLogger("orchestrator.pricing")
# A library prints nothing unless the application configures logging.
logger.addHandler(logging.NullHandler())


@dataclass(frozen=True, slots=True)
class Price:
    """Roubles per 1,000 prompt tokens and per 1,000 completion tokens."""

    prompt: Decimal
    completion: Decimal

    def __init__(self, prompt: Decimal | float | str, completion: Decimal | float | str) -> None:
        p, c = Decimal(str(prompt)), Decimal(str(completion))
        if p < 0 or c < 0:
            raise ValueError("prices must be >= 0")
        object.__setattr__(self, "prompt", p)
        object.__setattr__(self, "completion", c)


#: ``{model: Price}``; the key ``"*"`` applies to models without their own entry.
PriceTable = Mapping[str, Price]


def cost_of(usage: Usage | None, price: Price | None) -> Decimal | None:
    """Cost in roubles of ``usage`` at ``price`` (None when either is unknown)."""
    if usage is None or price is None:
        return None
    return (
        usage.prompt_tokens * price.prompt + usage.completion_tokens * price.completion
    ) / _THOUSAND


def _candidates(model: str) -> Iterator[str]:
    """The keys a model may be priced under, most specific first."""
    yield model
    if "://" in model:  # a model URI: "gpt://<folder>/<model>/<version>"
        parts = model.split("://", 1)[1].split("/")
        if len(parts) >= 3:
            yield f"{parts[1]}/{parts[2]}"
        if len(parts) >= 2:
            yield parts[1]
        return
    yield model.split(":", 1)[0]  # "GigaChat:2.0.28" -> "GigaChat"
    yield model.split("/", 1)[0]  # "yandexgpt-lite/rc" -> "yandexgpt-lite"
    if "/" not in model:
        yield f"{model}/latest"  # a short YandexGPT name means its /latest version


def find_price(table: PriceTable | None, model: str | None) -> Price | None:
    """The price of ``model`` in ``table``: exact name, then the name inside a model URI
    (``gpt://folder/yandexgpt/rc`` -> ``yandexgpt/rc``, then ``yandexgpt``), then its base
    name (``GigaChat:2.0.28`` -> ``GigaChat``), then ``"*"``.

    A miss in a plugin's shipped :class:`PriceList` is reported once per model (see there).
    """
    if table is None:
        return None
    if model:
        for key in _candidates(model):
            if key in table:
                return table[key]
    price = table.get("*")
    if price is None and model and isinstance(table, PriceList):
        table.report_missing(model)
    return price


# -- shipped list prices ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PriceSource:
    """Where figures come from: a document, its address and the date of the version read."""

    key: str
    title: str
    url: str
    as_of: date
    how: str = ""


@dataclass(frozen=True, slots=True)
class ListedPrice:
    """One published figure: roubles per 1,000 tokens for a model in a mode.

    ``model`` is the key the router looks up (empty when the source names no model id);
    ``mode`` is ``"sync"`` (what the router pays), ``"async"`` (a vendor's deferred mode) or
    ``"embedding"``; ``extra`` holds further published rates (``cached``, ``tools``).
    """

    model: str
    name: str
    mode: str
    prompt: Decimal | None
    completion: Decimal | None
    source: PriceSource
    extra: Mapping[str, Decimal] = field(default_factory=dict)
    note: str = ""

    def price(self) -> Price | None:
        """As a :class:`Price` (None unless both prompt and completion are listed)."""
        if self.prompt is None or self.completion is None:
            return None
        return Price(self.prompt, self.completion)


class PriceList(Mapping[str, Price]):
    """A plugin's shipped list prices: a price table of its synchronous chat (and embedding)
    prices by model, plus every figure with its source (:attr:`entries`) and what is known
    to be missing.

    A looked-up model without a figure is reported once per model: a WARNING on the
    ``orchestrator.pricing`` logger naming the config key that sets its price. A list is
    truthy even without figures, so the router keeps it and its misses are reported.
    """

    def __init__(
        self,
        provider: str,
        entries: tuple[ListedPrice, ...] = (),
        *,
        currency: str = "RUB",
        missing: str = "",
        unpriced: Mapping[str, str] | None = None,
        sources: tuple[PriceSource, ...] = (),
        origin: str = "",
    ) -> None:
        self.provider = provider
        self.entries = entries
        self.currency = currency
        #: Why a model has no figure, for models not listed in :attr:`unpriced`.
        self.missing = missing
        #: Known models without an authoritative figure, with the reason.
        self.unpriced: Mapping[str, str] = dict(unpriced or {})
        self.sources = sources
        self.origin = origin
        # Embedding models are priced like chat models (Router.embed looks them up by the
        # model it answered from); their names never collide with chat models'.
        self._table = {**self.table("embedding"), **self.table("sync")}
        self._reported: set[str] = set()
        self._lock = threading.Lock()

    def table(self, mode: str = "sync") -> dict[str, Price]:
        """``{model: Price}`` of the figures listed for ``mode`` (``"async"`` for a vendor's
        deferred mode: use it with :func:`cost_of` on such a completion's usage)."""
        table: dict[str, Price] = {}
        for entry in self.entries:
            price = entry.price()
            if price is None and entry.mode == "embedding" and entry.prompt is not None:
                price = Price(entry.prompt, Decimal(0))  # embeddings have input tokens only
            if entry.mode == mode and entry.model and price is not None:
                table[entry.model] = price
        return table

    def __getitem__(self, model: str) -> Price:
        return self._table[model]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table)

    def __len__(self) -> int:
        return len(self._table)

    def __bool__(self) -> bool:
        return True

    def __repr__(self) -> str:
        return f"<PriceList {self.provider} {len(self)} priced models from {self.origin!r}>"

    def report_missing(self, model: str) -> None:
        """Log once per model that ``model`` has no price, why, and how to set one."""
        with self._lock:
            if model in self._reported:
                return
            self._reported.add(model)
        name = model.split("://", 1)[1].split("/", 1)[1] if "://" in model else model
        reason = "; ".join(filter(None, (self.missing, self.unpriced.get(name))))
        reason = reason or "it is not in the shipped list"
        logger.warning(
            "No price for %s model %r: %s. Its cost stays null. Set one in the config file "
            'as [providers.<name>.prices."%s"] with prompt and completion in %s per 1,000 '
            "tokens (<name>: the provider's name there), or pass "
            'Router(prices={"<name>": {"%s": Price(prompt, completion)}}).',
            self.provider,
            model,
            reason,
            name,
            self.currency,
            name,
        )


def _decimal(value: Any, where: str) -> Decimal | None:
    if value is None:
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{where}: {value!r} is not a number") from None
    if number < 0:
        raise ValueError(f"{where}: a price must be >= 0, got {value!r}")
    return number


def parse_price_list(text: str, origin: str = "<string>") -> PriceList:
    """A :class:`PriceList` from the TOML of a ``prices.toml`` (format: see
    ``docs/concepts.md``, "Usage and cost"). Raises ``ValueError`` naming the bad entry."""
    import tomllib  # here, not at import: a router that never loads a price list skips it

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{origin}: not valid TOML: {exc}") from None
    provider = data.get("provider")
    if not isinstance(provider, str) or not provider:
        raise ValueError(f'{origin}: needs provider = "<registered name>"')
    sources: dict[str, PriceSource] = {}
    for key, source in (data.get("sources") or {}).items():
        as_of = source.get("as_of")
        if not isinstance(as_of, date) or not source.get("url") or not source.get("title"):
            raise ValueError(f"{origin}: [sources.{key}] needs title, url and as_of (a date)")
        sources[key] = PriceSource(
            key, source["title"], source["url"], as_of, source.get("how", "")
        )
    entries: list[ListedPrice] = []
    for number, item in enumerate(data.get("prices") or [], start=1):
        where = f"{origin}: [[prices]] #{number} ({item.get('name') or item.get('model')!r})"
        source_key = item.get("source")
        if source_key not in sources:
            raise ValueError(f"{where}: source {source_key!r} is not a [sources.*] table")
        mode = item.get("mode", "sync")
        if mode not in ("sync", "async", "embedding"):
            raise ValueError(f"{where}: mode must be sync, async or embedding, got {mode!r}")
        prompt = _decimal(item.get("prompt"), where)
        completion = _decimal(item.get("completion"), where)
        if prompt is None and completion is None:
            raise ValueError(f"{where}: needs prompt and/or completion")
        extra = {
            k: rate
            for k in ("cached", "tools")
            if (rate := _decimal(item.get(k), where)) is not None
        }
        entries.append(
            ListedPrice(
                model=str(item.get("model", "")),
                name=str(item.get("name") or item.get("model", "")),
                mode=mode,
                prompt=prompt,
                completion=completion,
                source=sources[source_key],
                extra=extra,
                note=str(item.get("note", "")),
            )
        )
    unpriced = {str(k): str(v) for k, v in (data.get("unpriced") or {}).items()}
    return PriceList(
        provider,
        tuple(entries),
        currency=str(data.get("currency", "RUB")),
        missing=str(data.get("missing", "")),
        unpriced=unpriced,
        sources=tuple(sources.values()),
        origin=origin,
    )


def load_price_list(package: str, resource: str = "prices.toml") -> PriceList:
    """The price list a plugin ships as package data (``package/resource``)."""
    from importlib import resources

    text = resources.files(package).joinpath(resource).read_text(encoding="utf-8")
    return parse_price_list(text, f"{package}/{resource}")


def describe_prices(table: Mapping[str, Price]) -> dict[str, Any]:
    """A provider's price table as JSON-ready data (``orchestrator prices --json``): every
    figure with its source and date; for a plain table (a plugin without a ``prices.toml``)
    the figures with ``source`` null."""

    def text(value: Decimal | None) -> str | None:
        return None if value is None else str(value)

    if not isinstance(table, PriceList):
        return {
            "currency": "RUB",
            "prices": [
                {
                    "model": model,
                    "name": model,
                    "mode": "sync",
                    "prompt": str(price.prompt),
                    "completion": str(price.completion),
                    "source": None,
                    "as_of": None,
                    "note": "set by the plugin without a source",
                }
                for model, price in table.items()
            ],
            "missing": "" if table else "the plugin ships no prices",
            "unpriced": {},
            "sources": [],
        }
    return {
        "currency": table.currency,
        "origin": table.origin,
        "prices": [
            {
                "model": entry.model or None,
                "name": entry.name,
                "mode": entry.mode,
                "prompt": text(entry.prompt),
                "completion": text(entry.completion),
                **{key: str(value) for key, value in entry.extra.items()},
                "source": entry.source.key,
                "url": entry.source.url,
                "as_of": entry.source.as_of.isoformat(),
                "note": entry.note,
            }
            for entry in table.entries
        ],
        "missing": table.missing,
        "unpriced": dict(table.unpriced),
        "sources": [
            {
                "key": source.key,
                "title": source.title,
                "url": source.url,
                "as_of": source.as_of.isoformat(),
                "how": source.how,
            }
            for source in table.sources
        ],
    }
