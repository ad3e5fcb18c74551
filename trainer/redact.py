"""Keep secrets out of everything a run records: one rule, applied where text leaves the process.

Tokens and credentials (`HF_TOKEN`, `AWS_SECRET_ACCESS_KEY`, `MLFLOW_TRACKING_PASSWORD`, ...) are read
from the environment by the libraries that need them and never enter the settings: a setting value
that holds one is refused (`find_secret`, called by the settings model), because settings are stored
in clear in places we cannot redact afterwards (Prefect's flow-run parameters). What can still carry
a secret is text we build from the environment (a tracking URI with `user:password@`) or an error
message that quotes one: `redact` masks it in every param, tag, logged text, settings file, manifest,
Prefect artifact, log record (`install_log_redaction`) and terminal line the pipeline writes.

The rule, one list of what counts as a secret:
- the values of secret-named environment variables (`is_secret_name`);
- URL credentials: `scheme://user:password@` (any user info before `@`), and query parameters
  named like a secret (`?token=`, `&sig=`, `X-Amz-Signature=`);
- well-known credential formats: Hugging Face, OpenAI / Anthropic, AWS access key ids, GitHub,
  GitLab, Slack and Google API tokens, JWTs and PEM private keys.
"""

from __future__ import annotations

import logging
import os
import re

# A name (an environment variable, a setting, a tag) names a secret when one of its words, split on
# `_`, `-` or `.`, is one of these: HF_TOKEN, AWS_SECRET_ACCESS_KEY, MLFLOW_TRACKING_PASSWORD,
# OPENAI_API_KEY, GOOGLE_APPLICATION_CREDENTIALS. Whole words, so max_new_tokens or
# TOKENIZERS_PARALLELISM are not secrets.
SECRET_NAME_WORDS = frozenset(
    {"TOKEN", "SECRET", "SECRETS", "PASSWORD", "PASSWD", "KEY", "APIKEY", "CREDENTIAL", "CREDENTIALS", "AUTH"}
)
# Shorter values are too likely to occur by chance ("1", "true") to be worth replacing.
MIN_SECRET_LENGTH = 6
MASK = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]+)@")
# `scheme:/user:password@` too: a path setting collapses the `//` of a URL before anything prints it.
# A password is required in this form: `models:/name@champion` is an MLflow URI, not a credential.
_COLLAPSED_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*:/)(?P<userinfo>[^/?#@\s:]+:[^/?#@\s]+)@")
# Query parameters that carry a credential: secret-named ones, and signed-URL signatures.
_SIGNED_URL_PARAMS = {"sig", "signature", "x-amz-signature", "x-amz-credential", "x-amz-security-token"}
_QUERY_PARAM = re.compile(r"(?P<lead>[?&])(?P<name>[A-Za-z0-9_.-]+)=(?P<value>[^&#\s]+)")
# Well-known token formats, anchored so a longer word ("desk-...") does not match in the middle.
TOKEN_PATTERNS: dict[str, re.Pattern[str]] = {
    "a Hugging Face token": re.compile(r"(?<![A-Za-z0-9])hf_[A-Za-z0-9]{30,}"),
    "an OpenAI / Anthropic API key": re.compile(r"(?<![A-Za-z0-9])sk-[A-Za-z0-9_-]{20,}"),
    "an AWS access key id": re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[0-9A-Z]{16}(?![A-Z0-9])"),
    "a GitHub token": re.compile(r"(?<![A-Za-z0-9])(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),
    "a GitLab token": re.compile(r"(?<![A-Za-z0-9])glpat-[A-Za-z0-9_-]{20,}"),
    "a Slack token": re.compile(r"(?<![A-Za-z0-9])xox[abposr]-[A-Za-z0-9-]{10,}"),
    "a Google API key": re.compile(r"(?<![A-Za-z0-9])AIza[0-9A-Za-z_-]{35}"),
    "a JSON web token": re.compile(r"(?<![A-Za-z0-9])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "a private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
}


def is_secret_name(name: str) -> bool:
    """True when `name` (an environment variable, a setting, a field) names a secret."""
    return any(word in SECRET_NAME_WORDS for word in re.split(r"[_\-.]+", name.upper()))


def secret_values() -> list[str]:
    """The values of secret-named environment variables, longest first (so overlaps mask fully)."""
    values = {value for name, value in os.environ.items() if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def _secret_query_param(name: str) -> bool:
    return is_secret_name(name) or name.lower() in _SIGNED_URL_PARAMS


def find_secret(text: str) -> str | None:
    """What kind of secret `text` holds, in words (never the secret itself), or None."""
    if not text:
        return None
    for name, value in os.environ.items():
        if is_secret_name(name) and len(value) >= MIN_SECRET_LENGTH and value in text:
            return f"the value of the environment variable {name}"
    if _URL_USERINFO.search(text) or _COLLAPSED_USERINFO.search(text):
        return "credentials in a URL (scheme://user:password@...)"
    for match in _QUERY_PARAM.finditer(text):
        if _secret_query_param(match["name"]):
            return f"a credential in the URL parameter {match['name']!r}"
    for kind, pattern in TOKEN_PATTERNS.items():
        if pattern.search(text):
            return kind
    return None


def redact(text: str) -> str:
    """`text` with every secret (see the module's docstring) replaced by ***."""
    if not text:
        return text
    for value in secret_values():
        if value in text:
            text = text.replace(value, MASK)
    for pattern in (_URL_USERINFO, _COLLAPSED_USERINFO):
        text = pattern.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    text = _QUERY_PARAM.sub(
        lambda m: f"{m['lead']}{m['name']}={MASK}" if _secret_query_param(m["name"]) else m[0], text
    )
    for pattern in TOKEN_PATTERNS.values():
        text = pattern.sub(MASK, text)
    return text


def redact_value(value):
    """redact() through dicts, lists and strings; other values unchanged."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    return value


class _RedactedRecord(logging.LogRecord):
    """A log record whose message and traceback text are redacted, for every handler at once
    (Prefect's API handler, which stores logs in its database, the console, files)."""

    def getMessage(self) -> str:
        return redact(super().getMessage())


def _record_factory(*args, **kwargs) -> logging.LogRecord:
    record = _RedactedRecord(*args, **kwargs)
    if record.exc_info and record.exc_info[1] is not None:
        # Formatters reuse exc_text when it is set: an exception message quoting a URL with its
        # password is masked before any handler formats it.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    return record


def install_log_redaction() -> None:
    """Make every log record of this process redacted (a record factory, installed once)."""
    if logging.getLogRecordFactory() is not _record_factory:
        logging.setLogRecordFactory(_record_factory)
