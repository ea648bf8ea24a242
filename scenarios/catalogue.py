"""What the traffic knows about the catalogue, and which products it asks for.

Real shops see skewed popularity: a few products draw most views and a long
tail is looked at now and then (web request popularity follows Zipf's law,
Breslau et al. 1999). A run that reads only the first page is served from
one hot cache entry and makes every hit rate easy; one that reads uniformly
makes every cache useless. So product ids are drawn from a bounded Zipf law
over the *whole* catalogue (the pmf of ``scipy.stats.zipfian``), and which id holds
which popularity rank is a permutation drawn from the run seed: two runs
with the same seed ask for the same products, another seed shifts the hot
set.

The catalogue's size comes from ``catalogue.json``, written by the fixture
loader next to the credentials file (fixture ids are 1..N). Without it (an
external ``--target`` deployment) flows fall back to the ids they saw on
listing pages.
"""

from __future__ import annotations

import json
import random
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from fixtures.vocab import PRODUCE

CATALOGUE_FILE = "catalogue.json"
DEFAULT_CATEGORIES = tuple(PRODUCE)
DEFAULT_TERMS = tuple(
    sorted({item.split()[-1].lower() for items, _, _ in PRODUCE.values() for item in items})
)
"""Categories and search words of the fixture vocabulary (they match product names)."""


@dataclass(frozen=True)
class Catalogue:
    """Size and vocabulary of a loaded catalogue (no secrets: counts and words)."""

    product_count: int
    categories: tuple[str, ...]
    terms: tuple[str, ...]
    """Search terms that match product names (lower-case item words)."""

    def write(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def read(cls, path: Path) -> Catalogue:
        data = json.loads(path.read_text())
        return cls(
            product_count=int(data["product_count"]),
            categories=tuple(data["categories"]),
            terms=tuple(data["terms"]),
        )

    @classmethod
    def of_fixtures(cls, product_count: int) -> Catalogue:
        """The catalogue the fixture generator makes: ids 1..N, the vocabulary's words."""
        return cls(product_count, DEFAULT_CATEGORIES, DEFAULT_TERMS)

    @classmethod
    def beside(cls, credentials: Path | str) -> Catalogue | None:
        """The catalogue the loader wrote next to ``credentials``, if any."""
        path = Path(credentials).with_name(CATALOGUE_FILE)
        return cls.read(path) if path.exists() else None


class Popularity:
    """Product ids by a bounded Zipf law over ranks, ranks mapped to ids by the seed."""

    def __init__(self, product_count: int, exponent: float, seed: int) -> None:
        if product_count < 1:
            raise ValueError("a catalogue needs at least one product")
        ranks = np.arange(1, product_count + 1)
        # scipy.stats.zipfian's pmf, normalised once: zipfian.pmf(ranks, s, n) recomputes
        # the normaliser for every rank (O(n^2): 2 s at 10k products, 36 s at 40k).
        weights = ranks ** -float(exponent)
        self.cdf = np.cumsum(weights / weights.sum())
        self.cdf[-1] = 1.0
        rng = np.random.default_rng([seed, zlib.crc32(b"popularity")])
        self.ids = rng.permutation(product_count) + 1

    def product(self, rng: random.Random) -> int:
        """One product id; ``rng`` is the caller's (a flow's) own stream."""
        rank = int(np.searchsorted(self.cdf, rng.random(), side="right"))
        return int(self.ids[min(rank, len(self.ids) - 1)])

    def share_of_top(self, fraction: float) -> float:
        """Probability mass of the most popular ``fraction`` of products (for docs/tests)."""
        top = max(1, round(len(self.ids) * fraction))
        return float(self.cdf[top - 1])
