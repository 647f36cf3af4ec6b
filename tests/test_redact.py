"""Secrets are masked in every text the plugin keeps or shows; ordinary text is left alone."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from pytest_agentperf.redact import MASK, redact

# Real-looking fake credentials (none of them is or was a working key).
OPENAI = "sk-" + "Zx9Qw2Er7Ty1Ui8Op3As6Df4" * 2
OPENAI_PROJECT = "sk-proj-" + "Ab3dE-f6Gh9_jK2mN5pQ8rS" * 3
ANTHROPIC = "sk-ant-api03-" + "Lm4No7Pq0Rs3Tu6Vw9Xy2Za5" * 4 + "-AAAAAA"
AWS = "AKIAIOSFODNN7EXAMPLE"
GITHUB = "ghp_" + "1a2B3c4D5e6F7g8H9i0J" * 2
GITHUB_FINE = "github_pat_11ABCDEFG0" + "aBcDeFgHiJ" * 6
HF = "hf_" + "QwErTyUiOpAsDfGhJkLz" * 2
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
HEX40 = "0123456789abcdef0123456789abcdef01234567"
B64 = "dGhpcyBpcyBhIHZlcnkgc2VjcmV0IHRva2Vu+/=="

KEYS = [OPENAI, OPENAI_PROJECT, ANTHROPIC, AWS, GITHUB, GITHUB_FINE, HF, JWT]


@pytest.mark.parametrize("key", KEYS)
def test_bare_keys_are_masked_wherever_they_stand(key: str) -> None:
    for text in (key, f"Error: invalid key {key}.", f"({key})", f"'{key}'", f"key:{key}\n"):
        masked = redact(text)
        assert key not in masked and MASK in masked


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"Error code: 401 - Incorrect API key provided: {OPENAI_PROJECT}",
            "Error code: 401 - Incorrect API key provided: sk-proj-***",
        ),
        (f"invalid x-api-key {ANTHROPIC}", "invalid x-api-key sk-ant-***"),
        (f"AWS key {AWS} denied", "AWS key AKIA*** denied"),
        (f"token {GITHUB} expired", "token ghp_*** expired"),
        (
            "headers={'Authorization': 'Bearer abc123def456ghi789'}",
            "headers={'Authorization': 'Bearer ***'}",
        ),
        ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "Authorization: Basic ***"),
        ("authorization=dXNlcjpwYXNzd29yZA==", "authorization=***"),
        ("sent Bearer 9f8e7d6c5b4a39281706 upstream", "sent Bearer *** upstream"),
        (
            f"GET https://api.example.com/v1?api_key={HEX40}&q=1",
            "GET https://api.example.com/v1?api_key=***&q=1",
        ),
        (f'{{"api_key": "{HEX40}", "model": "gpt-4o"}}', '{"api_key": "***", "model": "gpt-4o"}'),
        (f"api_key: {B64}", "api_key: ***"),
        (f"token={B64}", "token=***"),
        (f"access_token={HEX40}; next", "access_token=***; next"),
        (f"client_secret = {HEX40}", "client_secret = ***"),
        (f"key={HEX40}", "key=***"),
        (f"X-Api-Key: {HEX40}", "X-Api-Key: ***"),
        ("password=hunter2 user=bob", "password=*** user=bob"),
        ("{'passwd': 'abc'}", "{'passwd': '***'}"),
        (
            "postgres://admin:s3cr3t-pw@db.internal:5432/app",
            "postgres://admin:***@db.internal:5432/app",
        ),
        (JWT, MASK),
    ],
)
def test_secrets_are_masked_and_their_context_kept(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "task-management agent failed: TimeoutError after 30 s",
        "risk-assessment, desk-lamp, sk-learn, ask-me-anything",
        "colour #ff00ff and #1a2b3c; id a1b2c3d4; request id req_123",
        "KeyError: 'messages'",
        "max_tokens=4096 exceeds the model's context (input_tokens: 131072)",
        "the bearer of bad news; Basic functionality; token limit reached",
        "monkey: bananas; turkey=roasted; primary key: id",
        "commit 0123456789abcdef0123456789abcdef01234567 on branch main",
        "https://api.example.com/v1/chat/completions returned 429 Too Many Requests",
        "ValueError: could not convert string to float: 'abc'",
        "",
    ],
)
def test_ordinary_text_is_not_mangled(text: str) -> None:
    assert redact(text) == text


def test_redaction_is_idempotent_and_never_leaks_on_seeded_random_text() -> None:
    """Keys embedded in random surrounding text (fixed seed) are always masked, and masking
    twice changes nothing more."""
    rng = random.Random(20261130)
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJ0123456789 _-:=/'\"{},.;\n"
    keys = [*KEYS, f"api_key={HEX40}", f"Bearer {HEX40}", f"password=pw{HEX40[:6]}"]
    for _ in range(500):
        key = rng.choice(keys)
        left = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        right = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 40)))
        text = f"{left} {key} {right}"
        once = redact(text)
        secret = key.split("=")[-1].split(" ")[-1]
        assert secret not in once, text
        assert redact(once) == once, text


def test_error_messages_of_a_result_are_redacted_once_at_build_time() -> None:
    """``collect.build_result`` masks the engine's raw messages and abort reason, so every
    output made from the result (table, JSON, BudgetExceeded) is clean."""
    from dataclasses import replace

    from pytest_agentperf.assemble import build_result
    from pytest_agentperf.engine import RawRun
    from pytest_agentperf.engine.log import CallLog, merge
    from pytest_agentperf.settings import parse_settings
    from pytest_agentperf.usage import UsageAccumulator

    fields: dict[str, Any] = {f: None for f in RawRun.__dataclass_fields__}
    raw = RawRun(
        **{
            **fields,
            "log": merge([CallLog()]),
            "duration": 1.0,
            "error_types": {},
            "error_messages": (f"RuntimeError: bad key {OPENAI}",),
            "late_starts": 0,
            "aborted": f"stopped: Authorization: Bearer {HEX40}",
            "usage": UsageAccumulator(),
        }
    )
    result = build_result("r", parse_settings({}), raw)
    assert result.error_messages == ("RuntimeError: bad key sk-***",)
    assert result.aborted == "stopped: Authorization: Bearer ***"
    assert replace(result).to_dict()["error_messages"] == ["RuntimeError: bad key sk-***"]


def test_the_json_report_redacts_every_string(tmp_path: Path) -> None:
    from dataclasses import replace

    from pytest_agentperf.assemble import build_result
    from pytest_agentperf.engine import run_load
    from pytest_agentperf.record import Finding, RunRecord
    from pytest_agentperf.report import json as json_report
    from pytest_agentperf.settings import parse_settings

    settings = parse_settings({"requests": 2, "warmup": 0})
    result = build_result("r", settings, run_load(lambda: None, None, settings))
    result = replace(result, name=f"run {AWS}", error_messages=(f"x {GITHUB}",))
    record = RunRecord.of("t.py::test_x", result, warnings=(f"note api_key={HEX40}",))
    record = replace(record, findings=(Finding("r", "m", {"key": f"x {GITHUB}"}),))
    path = json_report.write(tmp_path / "r.json", [record], "9.9")
    text = path.read_text("utf-8")
    for secret in (AWS, HEX40, GITHUB):
        assert secret not in text
    assert "AKIA***" in text and "api_key=***" in text and "ghp_***" in text
    assert '"samples": [' in text and "t.py::test_x" in text


def test_terminal_lines_are_redacted() -> None:
    from pytest_agentperf.report import terminal

    lines = terminal.section([], [f"baseline note {OPENAI}"], [f"saved with token={HEX40}"])
    assert lines == ["agentperf: baseline note sk-***", "agentperf: saved with token=***"]
