"""Google GenAI: its ``usage_metadata`` block, read by shape (no google-genai import)."""

from __future__ import annotations

from typing import Any

from ..usage import UsageReader, UsageRecord, get_field, model_name, token_count, token_count0


def _metadata(meta: Any, model: str | None) -> UsageRecord | None:
    """Candidates exclude the thinking tokens, which are billed as output."""
    prompt = token_count(get_field(meta, "prompt_token_count"))
    cand = token_count(get_field(meta, "candidates_token_count"))
    if prompt is None and cand is None:
        return None
    thoughts = token_count0(get_field(meta, "thoughts_token_count"))
    return UsageRecord(
        input_tokens=prompt or 0,
        output_tokens=(cand or 0) + thoughts,
        model=model,
        cached_input_tokens=token_count0(get_field(meta, "cached_content_token_count")),
        reasoning_tokens=thoughts,
    )


READER = UsageReader(
    metadata=_metadata, model=lambda obj: model_name(getattr(obj, "model_version", None))
)
"""``GenerateContentResponse.usage_metadata``, named by ``model_version``."""
