"""Google GenAI: its ``usage_metadata`` block, read by shape (no google-genai import)."""

from __future__ import annotations

from ..usage import UsageFields, UsageReader, model_name

READER = UsageReader(
    metadata=UsageFields(
        input="prompt_token_count",
        output="candidates_token_count",
        cached="cached_content_token_count",
        reasoning="thoughts_token_count",
        reasoning_outside_output=True,  # candidates exclude the thinking tokens
    ),
    model=lambda obj: model_name(getattr(obj, "model_version", None)),
)
"""``GenerateContentResponse.usage_metadata``, named by ``model_version``."""
