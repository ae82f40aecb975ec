"""Domain errors of the dedup engine (kernels raise ValueError naming the bad value instead)."""

from __future__ import annotations


class DedupError(RuntimeError):
    """A dedup run cannot finish, e.g. connected components did not converge within the iteration bound."""
