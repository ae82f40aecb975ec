"""Domain errors of the dedup engine (kernels raise ValueError naming the bad value instead)."""

from __future__ import annotations

from pipelines.errors import TokenmillError


class DedupError(TokenmillError, RuntimeError):
    """A dedup run cannot finish, e.g. connected components did not converge within the iteration bound.
    Also a RuntimeError, as it was before it became a TokenmillError."""

    exit_code = 9
