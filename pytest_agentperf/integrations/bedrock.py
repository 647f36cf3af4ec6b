"""AWS Bedrock Converse: its camelCase usage block, read by shape (no boto3 import)."""

from __future__ import annotations

from typing import Any

from ..usage import UsageReader, UsageRecord, get_field, token_count, token_count0


def _block(usage: Any, model: str | None) -> UsageRecord | None:
    """``inputTokens`` there excludes cache reads and writes; ours includes them."""
    inp = token_count(get_field(usage, "inputTokens"))
    out = token_count(get_field(usage, "outputTokens"))
    if inp is None and out is None:
        return None
    read = token_count0(get_field(usage, "cacheReadInputTokens"))
    write = token_count0(get_field(usage, "cacheWriteInputTokens"))
    return UsageRecord(
        input_tokens=(inp or 0) + read + write,
        output_tokens=out or 0,
        model=model,
        cached_input_tokens=read,
        cache_creation_input_tokens=write,
    )


READER = UsageReader(block=_block)
"""Converse responses' ``usage`` block."""
