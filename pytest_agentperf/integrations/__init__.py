"""Optional integrations with LLM libraries; each imports its library only when used.

``USAGE_READERS`` is the one place where a provider's usage reader is registered: usage.py
tries them in this order (for a block, the first whose field names match wins, so more
specific shapes come first). Adding a provider is one module here with a ``UsageReader``
and one entry below; a client wrapper only lists its method paths (see ``proxy.py``).
"""

from __future__ import annotations

from . import anthropic, bedrock, google, langchain, openai

USAGE_READERS = (
    openai.CHAT_READER,
    anthropic.READER,  # before Responses: the same field names plus cache fields
    openai.RESPONSES_READER,
    bedrock.READER,
    langchain.READER,  # before Google: both name their block usage_metadata
    google.READER,
)
