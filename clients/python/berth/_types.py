"""What the client's calls return: plain dataclasses."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Classification:
    """One text's answer: the best label, its score, and every label's score (or logit)."""

    label: str
    score: float
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Token:
    id: int
    text: str
    special: bool


@dataclass(frozen=True)
class RerankResult:
    """One text of a rerank, best first: its index in the request, its score, its text if asked."""

    index: int
    score: float
    text: str | None = None
