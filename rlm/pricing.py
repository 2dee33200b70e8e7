"""What a model call costs, from the maintained genai-prices data or a user override.

genai-prices ships its price table offline (no network at run time), knows
tiered prices (the whole request is priced at the higher tier above a
threshold, so a larger token count never costs less) and returns ``Decimal``.
An override (USD per 1M input/output tokens, 0 for a local server) wins.
Cached-input discounts are not applied: the ledger may over-state a bill,
never under-state it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from rlm.errors import ConfigError

__all__ = ["Pricing", "resolve_pricing", "format_usd"]

_MILLION = Decimal(1_000_000)


def format_usd(amount: float | Decimal) -> str:
    """Dollars for a message: cents when there are any, else enough digits to see a small budget."""
    value = float(amount)
    if value == 0 or abs(value) >= 0.01:
        return f"${value:.2f}"
    return f"${value:.6f}".rstrip("0")


@dataclass(frozen=True, slots=True)
class Pricing:
    """Prices for one model. ``source`` says where they came from."""

    model: str
    source: str
    input_per_mtok: Decimal | None = None
    output_per_mtok: Decimal | None = None
    provider: str | None = None

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Exact USD cost of a call with these token counts."""
        if self.input_per_mtok is not None and self.output_per_mtok is not None:
            return (self.input_per_mtok * input_tokens + self.output_per_mtok * output_tokens) / _MILLION
        from genai_prices import Usage, calc_price

        usage = Usage(input_tokens=input_tokens, output_tokens=output_tokens)
        return Decimal(calc_price(usage, self.model, provider_id=self.provider).total_price)

    def describe(self) -> dict[str, object]:
        """Base-tier prices per 1M tokens, for summaries."""
        return {
            "model": self.model,
            "source": self.source,
            "input_usd_per_mtok": float(self.cost(1000, 0) * 1000),
            "output_usd_per_mtok": float(self.cost(0, 1000) * 1000),
        }


def _how_to_price(model: str) -> str:
    return (
        f"No price known for model {model!r}. Set RLM_PRICE_INPUT and RLM_PRICE_OUTPUT "
        "(USD per 1M tokens; 0 for a local server), or pass price_input_per_mtok and "
        "price_output_per_mtok to GuardConfig."
    )


def resolve_pricing(model: str, input_per_mtok: Decimal | None, output_per_mtok: Decimal | None) -> Pricing:
    """Find the price of ``model``, refusing (ConfigError) a model with no known price."""
    if (input_per_mtok is None) != (output_per_mtok is None):
        raise ConfigError(
            "Set both the input and the output price (RLM_PRICE_INPUT and RLM_PRICE_OUTPUT, "
            "or price_input_per_mtok and price_output_per_mtok), not just one."
        )
    if input_per_mtok is not None:
        return Pricing(model, "override", input_per_mtok, output_per_mtok)
    try:
        from genai_prices import Usage, calc_price
    except ImportError as exc:  # pragma: no cover - it is a pinned dependency
        raise ConfigError(_how_to_price(model) + " (genai-prices is not installed)") from exc
    usage = Usage(input_tokens=1, output_tokens=1)
    for provider in ("openai", None):
        try:
            calc = calc_price(usage, model, provider_id=provider)
        except LookupError:
            continue
        source = f"genai-prices ({calc.provider.id})"
        slow = Pricing(model, source, provider=calc.provider.id)
        inp, out = calc.model_price.input_mtok, calc.model_price.output_mtok
        if isinstance(inp, Decimal) and isinstance(out, Decimal):
            # Flat prices: the same arithmetic without a table lookup per call (a hot path),
            # used only if it agrees with genai-prices exactly.
            fast = Pricing(model, source, inp, out, provider=calc.provider.id)
            probes = ((1000, 1000), (123_457, 7), (3, 99_991))
            if all(fast.cost(i, o) == slow.cost(i, o) for i, o in probes):
                return fast
        return slow
    raise ConfigError(_how_to_price(model))
