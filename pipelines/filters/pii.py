"""`pii`: redacts e-mail addresses, IP addresses and phone numbers, as RE2 kernels of pyarrow.compute."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipelines.filters.base import BaseFilter, BatchContext, FilterResult
from pipelines.filters.rules import first_reason

EMAIL_RE = r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
IPV4_RE = r"\b(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\b"
IPV6_RE = r"\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"
# North-American and international numbers: optional +country code, groups split by space, dot or dash,
# optional parenthesised area code; at least 9 digits in all so that dates and prices do not match.
PHONE_RE = r"(?:\+\d{1,3}[\s.\-]?)?(?:\(\d{2,4}\)[\s.\-]?|\b\d{2,4}[\s.\-])\d{3,4}[\s.\-]\d{3,4}\b"


def redact_pii(
    text: pa.Array, *, emails: bool, ips: bool, phones: bool, email_sub: str, ip_sub: str, phone_sub: str
) -> tuple[pa.Array, dict[str, np.ndarray]]:
    """Replace e-mail addresses, IPv4/IPv6 addresses and phone numbers by placeholders.

    Returns the new text and int32 match counts per document under "pii_emails", "pii_ips", "pii_phones"
    (zeros for a disabled kind). E-mails are replaced first so their digits are not taken for phones.
    """
    counts: dict[str, np.ndarray] = {}
    steps = (("pii_emails", emails, (EMAIL_RE,), email_sub), ("pii_ips", ips, (IPV4_RE, IPV6_RE), ip_sub),
             ("pii_phones", phones, (PHONE_RE,), phone_sub))  # fmt: skip
    for name, enabled, patterns, sub in steps:
        total = np.zeros(len(text), dtype=np.int32)
        if enabled:
            for pattern in patterns:
                n = pc.count_substring_regex(text, pattern).fill_null(0)
                total += n.to_numpy(zero_copy_only=False).astype(np.int32)
                text = pc.replace_substring_regex(text, pattern, sub.replace("\\", "\\\\"))
        counts[name] = total
    return text, counts


class PIIFilter(BaseFilter):
    """Redacts e-mail addresses, IP addresses and phone numbers with placeholders and counts them.
    Keeps every document unless `max_matches` is set (then more matches than that gives reason `pii`)."""

    name: Literal["pii"] = "pii"
    emails: bool = True
    ip_addresses: bool = True
    phone_numbers: bool = True
    email_placeholder: str = "<EMAIL>"
    ip_placeholder: str = "<IP_ADDRESS>"
    phone_placeholder: str = "<PHONE_NUMBER>"
    max_matches: int | None = None

    signals = ("pii_emails", "pii_ips", "pii_phones")

    def apply(self, ctx: BatchContext) -> FilterResult:
        redacted, counts = redact_pii(
            ctx.text, emails=self.emails, ips=self.ip_addresses, phones=self.phone_numbers,
            email_sub=self.email_placeholder, ip_sub=self.ip_placeholder, phone_sub=self.phone_placeholder,
        )  # fmt: skip
        total = counts["pii_emails"] + counts["pii_ips"] + counts["pii_phones"]
        too_many = total > self.max_matches if self.max_matches is not None else None
        reasons = first_reason(ctx.num_rows, [("pii", too_many)])
        # every document still in the running is redacted, also one this filter drops for too many matches
        text = pc.if_else(pa.array(ctx.alive), redacted, ctx.text) if (total > 0).any() else None
        return FilterResult(reasons, counts, text)
