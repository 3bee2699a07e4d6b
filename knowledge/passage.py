"""A retrieved passage (the contract lives in `agents.schemas`, which the answerer reads)."""

from agents.schemas import Passage

__all__ = ["Passage"]
