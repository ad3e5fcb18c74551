"""Keep secrets out of everything a run records.

Tokens and credentials (`HF_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `MLFLOW_TRACKING_PASSWORD`, ...) are read
from the environment by the libraries that need them and never enter the settings. What can still
carry one is text we build ourselves: a URL with `user:password@` in it (an fsspec backup path, a
tracking URI) or an error message that quotes one. `redact` is applied to every param, tag, logged
text and manifest the pipeline writes.
"""

from __future__ import annotations

import os
import re

# Environment variables whose names contain one of these hold secrets.
SECRET_NAME_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "ACCESS_KEY", "PRIVATE_KEY", "CREDENTIAL", "AUTH")
# Shorter values are too likely to occur by chance ("1", "true") to be worth replacing.
MIN_SECRET_LENGTH = 6
MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")


def secret_values() -> list[str]:
    """The values of secret-named environment variables, longest first (so overlaps mask fully)."""
    values = {
        value
        for name, value in os.environ.items()
        if any(marker in name.upper() for marker in SECRET_NAME_MARKERS) and len(value) >= MIN_SECRET_LENGTH
    }
    return sorted(values, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with secret environment values and URL credentials replaced by ***."""
    if not text:
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
    return _URL_USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)


def redact_value(value):
    """redact() through dicts, lists and strings; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value
