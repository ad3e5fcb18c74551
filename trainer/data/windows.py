"""Long plain text split into windows that fit max_seq_length (`text_windows: true`), instead of
leaving the row out.

Windows are cut at token boundaries of the whole text (offsets from the tokenizer), consecutive
windows sharing `overlap` tokens, and each is checked by tokenizing it exactly as training will;
a window over the limit is shrunk until it fits. Every window but the last `continues`: training
puts no end-of-text token after it, so the model does not learn to stop in mid-document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# count(text, continues) -> the tokens training gives that text (special tokens included)
Counter = Callable[[str, bool], int]


def split_text(tokenizer: Any, text: str, count: Counter, max_tokens: int, overlap: int) -> list[tuple[str, bool]]:
    """[(window text, continues)], covering the whole text in order; [] when no window can fit
    (the special tokens alone fill max_tokens, or the tokenizer gives no offsets)."""
    try:
        offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    except (NotImplementedError, ValueError, KeyError):  # a slow tokenizer has no offsets
        return []
    total = len(offsets)
    size = max_tokens - count("", False)  # room left by the special tokens training adds
    if size - overlap < 1:
        return []
    windows: list[tuple[str, bool]] = []
    start = 0
    while True:
        end = min(start + size, total)
        while True:
            last = end >= total
            piece = text[0 if start == 0 else offsets[start][0] : len(text) if last else offsets[end][0]]
            tokens = count(piece, not last)
            if tokens <= max_tokens:
                break
            if end - start <= 1:
                return []  # one token that does not fit: nothing to do
            end = max(start + 1, end - (tokens - max_tokens))
        windows.append((piece, not last))
        if last:
            return windows
        start = max(end - overlap, start + 1)
