"""AWS Bedrock Converse: its camelCase usage block, read by shape (no boto3 import)."""

from __future__ import annotations

from ..usage import UsageFields, UsageReader

READER = UsageReader(
    block=UsageFields(
        input="inputTokens",
        output="outputTokens",
        cached="cacheReadInputTokens",
        cache_write="cacheWriteInputTokens",
        cache_outside_input=True,  # inputTokens excludes cache reads and writes
    )
)
"""Converse responses' ``usage`` block."""
