"""How the simulated marketplace behaves: popularity, browsing depth, operations cadence.

These are the ``[defaults.traffic]`` (or ``[phases.N.traffic]``) numbers of
``config/phases.toml``, where each value's reasoning is written beside it.
The phase config validates them with this model before anything starts, and
the resolved values travel to every Locust process in ``plan.json``; the
flows read them from there, never from code constants (hence no defaults here:
every key is required, the file states each value once).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Share = Annotated[float, Field(ge=0, le=1)]


class Traffic(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    zipf_exponent: Annotated[float, Field(gt=0, le=3)]
    """Skew of product popularity (bounded Zipf over the whole catalogue)."""
    search_share: Share
    """Share of catalogue visits that start with a name search."""
    category_share: Share
    """Share of catalogue visits that filter by category; the rest list everything."""
    next_page_probability: Share
    """Chance to scroll one more page (cursor pagination, phase1+): geometric depth."""
    max_pages: Annotated[int, Field(ge=1, le=50)]
    product_views: tuple[int, int]
    """Product detail pages one catalogue visit opens, uniform in [min, max]."""
    batch_interval_s: Annotated[float, Field(gt=0)]
    """Operations: one batch generation for the next delivery date every this many s."""
    payout_interval_s: Annotated[float, Field(gt=0)]
    """Operations: one payout round every this many seconds."""
    payouts_per_round: Annotated[int, Field(ge=0, le=100)]
    """Payees paid out per round (farmers and drivers alternately)."""

    @model_validator(mode="after")
    def _consistent(self) -> Traffic:
        if self.search_share + self.category_share > 1:
            raise ValueError("search_share + category_share must be <= 1")
        low, high = self.product_views
        if low < 0 or high < low:
            raise ValueError("product_views needs [min, max] with 0 <= min <= max")
        return self
