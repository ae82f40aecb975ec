"""Text normalization applied to every document before filtering, the same way in every stage.

Steps, each switchable in `NormalizeConfig` (`curate.normalize`), run on whole Arrow arrays (RE2 and ICU
kernels of pyarrow.compute, no Python per document):

1. line endings: CRLF, CR, VT, FF, NEL, U+2028 and U+2029 become "\\n";
2. control characters: C0/C1 controls other than "\\n" and "\\t", and the BOM U+FEFF, are removed;
3. Unicode normalization form (NFC by default, NFKC, or none);
4. whitespace: runs of horizontal whitespace become one space, spaces at line ends go, three or more
   newlines become two (paragraph breaks survive), and the text is stripped.

Nulls stay null. The result has the input's string type.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipelines.filters.config import NormalizeConfig

_LINE_BREAKS = "\r\n|[\r\x0b\x0c\u0085\u2028\u2029]"
_CONTROLS = "[\x00-\x08\x0e-\x1f\x7f-\x84\u0086-\u009f\ufeff]"
_HSPACE = r"[\t\p{Zs}]+"


def normalize_text(text: pa.Array | pa.ChunkedArray, config: NormalizeConfig) -> pa.Array:
    """Normalize a string array as `config` says; see the module docstring for the steps and their order."""
    if isinstance(text, pa.ChunkedArray):
        text = text.combine_chunks()
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        raise ValueError(f"text must be a string array, got {text.type}")
    out = text
    if config.line_endings:
        out = pc.replace_substring_regex(out, _LINE_BREAKS, "\n")
    if config.strip_control:
        # \x0b and \x0c are controls too; without the line-ending step they are removed here
        out = pc.replace_substring_regex(
            out, _CONTROLS if config.line_endings else "[\x0b\x0c]|" + _CONTROLS, ""
        )
    if config.unicode_form != "none":
        out = pc.utf8_normalize(out, form=config.unicode_form)
    if config.collapse_whitespace:
        out = pc.replace_substring_regex(out, _HSPACE, " ")
        out = pc.replace_substring_regex(out, " ?\n ?", "\n")
        out = pc.replace_substring_regex(out, "\n{3,}", "\n\n")
        out = pc.utf8_trim_whitespace(out)
    return out
