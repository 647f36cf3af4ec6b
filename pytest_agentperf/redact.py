"""Masking of secrets (API keys, bearer tokens, passwords) in text the plugin stores or prints.

Error messages of an agent often quote a request: its headers, its URL, the client's
configuration. Every piece of such text goes through ``redact`` before it reaches a result, the
terminal or a file, so a report shared in CI never carries a key. The patterns look for the
shape of a credential (a known prefix such as ``sk-`` or ``ghp_``, or a long token after
``key=``/``token=``/``password:`` and the like), not for any word: ordinary text, ids and
hex colour codes stay as they are.
"""

from __future__ import annotations

import re

MASK = "***"
"""What replaces the secret part of a match (the key's name or prefix stays, for context)."""

# Not preceded by a letter, digit, "_" or "-": "task-management" holds no "sk-" key.
_START = r"(?<![A-Za-z0-9_-])"

# (pattern, replacement). Each pattern keeps a short recognisable head and masks the rest.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-...), and most "sk-" style keys.
    (re.compile(_START + r"(sk-(?:ant-|proj-|svcacct-|admin-)?)[A-Za-z0-9_-]{16,}"), r"\1" + MASK),
    # GitHub tokens: classic (ghp_, gho_, ghu_, ghs_, ghr_) and fine-grained (github_pat_).
    (re.compile(_START + r"(gh[pousr]_)[A-Za-z0-9]{20,}"), r"\1" + MASK),
    (re.compile(_START + r"(github_pat_)[A-Za-z0-9_]{20,}"), r"\1" + MASK),
    # AWS access key ids.
    (re.compile(r"(?<![A-Z0-9])((?:AKIA|ASIA))[0-9A-Z]{16}(?![0-9A-Z])"), r"\1" + MASK),
    # Google API keys, Slack tokens, Hugging Face tokens.
    (re.compile(_START + r"(AIza)[0-9A-Za-z_-]{30,}"), r"\1" + MASK),
    (re.compile(_START + r"(xox[abposr]-)[A-Za-z0-9-]{10,}"), r"\1" + MASK),
    (re.compile(_START + r"(hf_)[A-Za-z0-9]{20,}"), r"\1" + MASK),
    # JSON Web Tokens (three base64url parts, the first two starting with '{"' encoded).
    (re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"), MASK),
    # "Authorization: Bearer <token>" (any scheme) and a bare "Bearer <token>".
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?[a-z]+\s+)[A-Za-z0-9._~+/=-]{6,}"),
        r"\1" + MASK,
    ),
    (
        re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(?![a-z]+\s)[A-Za-z0-9._~+/=-]{6,}"),
        r"\1" + MASK,
    ),
    (re.compile(r"(?i)\b(bearer\s+)(?=[A-Za-z0-9._~+/=-]*\d)[A-Za-z0-9._~+/=-]{8,}"), r"\1" + MASK),
    # A password after its name, whatever its length: password=..., "pwd": "...".
    (
        re.compile(
            r"(?i)(\b[a-z0-9_-]*(?:passw(?:or)?d|pwd)[\"']?\s*[:=]\s*[\"']?)[^\s\"'&,;)}\]]+"
        ),
        r"\1" + MASK,
    ),
    # A value after a secret-sounding name: api_key=..., "api_key": "...", x-api-key: ...,
    # client_secret=..., access_token=..., key=... (query strings, headers, dicts, JSON).
    (
        re.compile(
            r"(?i)(\b(?:[a-z0-9_-]*(?:api[_-]?key|apikey|secret|token|credentials?"
            r"|auth[_-]?key|private[_-]?key|session[_-]?key|access[_-]?key)|key)"
            r"[\"']?\s*[:=]\s*[\"']?)"
            r"[^\s\"'&,;)}\]]{8,}"
        ),
        r"\1" + MASK,
    ),
    # Credentials in a URL: scheme://user:password@host
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)[^\s@/]{3,}(@)"), r"\1" + MASK + r"\2"),
)


def redact(text: str) -> str:
    """``text`` with every key-like string masked (``sk-proj-abc...`` -> ``sk-proj-***``)."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


__all__ = ["MASK", "redact"]
