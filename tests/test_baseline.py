"""The baseline file: round trip, stable format, subset merge, atomic save, hostile content."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import make_result, make_shape

from pytest_agentperf import baseline as bl
from pytest_agentperf.baseline import (
    MAX_SAMPLES,
    Baseline,
    BaselineRun,
    Environment,
    Machine,
    cap_samples,
    dumps,
    environment,
    load,
    run_from_result,
    save,
    store,
)
from pytest_agentperf.errors import AgentPerfError, BaselineError
from pytest_agentperf.results import Cost, PerCallUsage, PerfResult, Usage
from pytest_agentperf.stats import summarize

ENV = Environment(
    Machine(cpu="Test CPU", cores=2, os="Linux", arch="x86_64", python="3.11.7"),
    "0123456789abcdef0123456789abcdef01234567",
    "0.1.0",
)


def full_result(n: int = 100, seed: int = 0, **kw: Any) -> PerfResult:
    """``n`` lognormal calls plus two errors (one a timeout), tokens and cost: every part a
    baseline run keeps, with digits enough to show the rounding."""
    samples = np.random.default_rng(seed).lognormal(-2.0, 0.5, n)
    fields: dict[str, Any] = {
        "shape": make_shape(requests=n, concurrency=2),
        "requests": n + 2,
        "errors": 2,
        "timeouts": 1,
        "error_rate": 2 / (n + 2),
        "error_types": {"Timeout": 1, "ValueError": 1},
        "throughput": 12.3456789,
        "duration": 8.1234567,
        "usage": Usage(
            input_tokens=100 * n,
            output_tokens=20 * n,
            total_tokens=120 * n,
            calls_with_usage=n,
            per_call=PerCallUsage(100.0, 20.0, 120.0),
        ),
        "cost": Cost(total=0.00012345678 * n, per_call=0.000123456789123),
    }
    fields.update(kw)
    return make_result(samples, **fields)


def entry(test: str = "tests/test_a.py::test_one", **kw: Any) -> BaselineRun:
    return run_from_result(test, full_result(**kw), ENV)


def write_valid(path: Path) -> str:
    save(path, [entry()], keep_existing=False)
    return path.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- round trip & format


def test_missing_file_means_no_baseline(tmp_path: Path) -> None:
    assert load(tmp_path / "nope.json") is None


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / ".agentperf" / "baseline.json"
    e = entry()
    result = save(path, [e])
    assert result.written == 1 and result.kept == 0 and result.replaced_problem is None
    loaded = load(path)
    assert isinstance(loaded, Baseline)
    got = loaded.get("tests/test_a.py::test_one", "default")
    assert got is not None
    assert got.shape == e.shape
    assert (got.requests, got.errors, got.timeouts) == (102, 2, 1)
    assert got.figures["tokens_per_call"] == 120.0
    assert got.figures["cost_per_call"] == pytest.approx(0.000123456789, rel=1e-8)
    assert got.machine == ENV.machine
    assert got.commit == ENV.commit
    assert got.plugin_version == "0.1.0"
    assert got.latency.n == 100
    assert got.latency.p95 == pytest.approx(full_result().latency.p95, abs=1e-6)
    np.testing.assert_array_equal(got.latency.samples, e.latency.samples)
    assert loaded.tests() == frozenset({"tests/test_a.py::test_one"})
    assert loaded.get("tests/test_a.py::test_one", "other") is None


def test_samples_keep_start_order_and_are_rounded_to_microseconds() -> None:
    e = entry()
    s = e.latency.samples
    assert e.in_order
    np.testing.assert_allclose(s, full_result().latency.samples, atol=1e-6)  # start order kept
    assert np.all(np.abs(s * 1e6 - np.round(s * 1e6)) < 1e-6)


def test_samples_are_capped_by_even_quantiles() -> None:
    full = np.random.default_rng(3).lognormal(0, 0.5, 30_000)
    capped = cap_samples(full)
    assert capped.size == MAX_SAMPLES
    assert capped[0] == pytest.approx(full.min(), abs=1e-6)
    assert capped[-1] == pytest.approx(full.max(), abs=1e-6)
    for q in (0.5, 0.9, 0.95, 0.99):
        assert np.quantile(capped, q) == pytest.approx(np.quantile(full, q), rel=2e-3)
    np.testing.assert_array_equal(capped, cap_samples(full[::-1]))  # deterministic
    assert cap_samples(np.array([0.3, 0.1, np.nan])).tolist() == [0.1, 0.3]


def test_file_is_diff_friendly(tmp_path: Path) -> None:
    a, b = entry("tests/b.py::t"), entry("tests/a.py::t", name="second")
    text = dumps([a, b])
    assert text == dumps([b, a])  # order of saving does not matter
    doc = json.loads(text)
    assert list(doc) == ["format", "schema", "runs"]
    assert doc["format"] == "pytest-agentperf-baseline" and doc["schema"] == 1
    assert [r["test"] for r in doc["runs"]] == ["tests/a.py::t", "tests/b.py::t"]
    assert list(doc["runs"][0])[:3] == ["test", "run", "created"]
    sample_lines = [line for line in text.splitlines() if '"samples"' in line]
    assert len(sample_lines) == 2  # each run's samples on one line
    assert doc["runs"][0]["duration"] == 8.123457
    assert "NaN" not in text and "Infinity" not in text


def test_non_finite_values_are_written_as_null(tmp_path: Path) -> None:
    e = entry(throughput=float("nan"))
    e = replace(e, figures={**e.figures, "tokens_per_call": float("inf")})
    path = tmp_path / "b.json"
    save(path, [e])
    got = load(path)
    assert got is not None
    run = got.get(e.test, e.run)
    assert run is not None and run.figures["tokens_per_call"] is None and run.throughput == 0.0


def test_run_without_usage_or_samples(tmp_path: Path) -> None:
    r = full_result(usage=Usage(), cost=Cost(), latency=summarize([]))
    e = run_from_result("t::x", r, ENV)
    path = tmp_path / "b.json"
    save(path, [e])
    got = load(path)
    assert got is not None
    run = got.get("t::x", "default")
    assert run is not None
    assert run.figures["tokens_per_call"] is None and run.figures["cost_per_call"] is None
    assert run.latency.n == 0 and run.latency.samples.size == 0 and run.latency.p50 is None


# --------------------------------------------------------------------------- merge & atomicity


def test_saving_a_subset_keeps_the_other_tests(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save(path, [entry("t::a"), entry("t::b"), entry("t::b", name="second")])
    newer = entry("t::b", seed=9)
    result = save(path, [newer])
    assert (result.written, result.kept) == (1, 2)
    got = load(path)
    assert got is not None
    assert set(got.runs) == {("t::a", "default"), ("t::b", "default"), ("t::b", "second")}
    b = got.get("t::b", "default")
    assert b is not None
    np.testing.assert_array_equal(b.latency.samples, newer.latency.samples)

    save(path, [newer], keep_existing=False)
    got = load(path)
    assert got is not None and set(got.runs) == {("t::b", "default")}


def test_a_test_that_ran_to_the_end_is_re_recorded_whole(tmp_path: Path) -> None:
    """A complete test's runs are exactly its new ones: a run it no longer makes (renamed)
    does not linger as "missing"; a test that stopped early keeps the runs it did not reach."""
    path = tmp_path / "baseline.json"
    save(path, [entry("t::a"), entry("t::a", name="old"), entry("t::b"), entry("t::b", name="x")])
    result = save(path, [entry("t::a", name="new"), entry("t::b")], complete={"t::a"})
    got = load(path)
    assert got is not None
    assert set(got.runs) == {("t::a", "new"), ("t::b", "default"), ("t::b", "x")}
    assert (result.written, result.kept) == (2, 1)


def test_saving_over_a_corrupt_file_replaces_it_and_says_so(tmp_path: Path) -> None:
    """A baseline of ours that no longer parses (cut short, a bad merge) is replaced."""
    path = tmp_path / "baseline.json"
    text = write_valid(path)
    path.write_text(text[: len(text) // 2], encoding="utf-8")
    result = save(path, [entry()])
    assert result.replaced_problem is not None and "not valid JSON" in result.replaced_problem
    assert load(path) is not None


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "baseline.json")


@pytest.mark.parametrize("fail_at", ["replace", "fsync", "write"])
def test_a_crash_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: str
) -> None:
    path = tmp_path / "baseline.json"
    old = write_valid(path)

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError(28, "No space left on device")

    if fail_at == "replace":
        monkeypatch.setattr(store.os, "replace", boom)
    elif fail_at == "fsync":
        monkeypatch.setattr(store.os, "fsync", boom)
    else:
        monkeypatch.setattr(store, "dumps", lambda *a: "x" * 10)  # a short document...
        real_fdopen = os.fdopen

        class _Half:
            def __init__(self, f: Any) -> None:
                self.f = f

            def __enter__(self) -> _Half:
                return self

            def __exit__(self, *exc: Any) -> None:
                self.f.close()

            def write(self, text: str) -> int:
                self.f.write(text[: len(text) // 2])  # ...half written, then the disk fills
                raise OSError(28, "No space left on device")

        monkeypatch.setattr(store.os, "fdopen", lambda *a, **k: _Half(real_fdopen(*a, **k)))
    with pytest.raises(BaselineError, match=r"could not write the baseline file .*unchanged"):
        save(path, [entry("t::new")])
    assert path.read_text(encoding="utf-8") == old
    assert _leftovers(tmp_path) == []


def test_an_interrupt_mid_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    old = write_valid(path)

    def interrupt(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(store.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        save(path, [entry("t::new")])
    assert path.read_text(encoding="utf-8") == old
    assert _leftovers(tmp_path) == []


def test_save_creates_the_folder(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "baseline.json"
    save(path, [entry()])
    assert load(path) is not None


def test_never_pickle(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    text = write_valid(path)
    assert json.loads(text)
    path.write_bytes(b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00.")  # a pickle
    with pytest.raises(BaselineError, match="not UTF-8"):
        load(path)


# --------------------------------------------------------------------------- hostile content


def _mutate(text: str, change: Any) -> str:
    doc = json.loads(text)
    change(doc)
    return json.dumps(doc)


def _set_run(key: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        doc["runs"][0][key] = value

    return change


def _set_latency(key: str, value: Any) -> Any:
    def change(doc: dict[str, Any]) -> None:
        doc["runs"][0]["latency"][key] = value

    return change


def _duplicate(doc: dict[str, Any]) -> None:
    doc["runs"].append(doc["runs"][0])


def _deep(doc: dict[str, Any]) -> None:
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    doc["runs"][0]["machine"]["extra"] = nested


CORRUPTIONS = {
    "empty": (lambda t: "", "empty"),
    "whitespace": (lambda t: "  \n", "empty"),
    "truncated": (lambda t: t[: len(t) // 2], "not valid JSON, truncated or corrupt"),
    "garbage": (lambda t: "<<<>>>", "not valid JSON"),
    "foreign json": (
        lambda t: json.dumps({"machine_info": {}, "benchmarks": []}),
        "not a pytest-agentperf baseline",
    ),
    "json array": (lambda t: "[1, 2, 3]", "not a pytest-agentperf baseline"),
    "newer schema": (
        lambda t: _mutate(t, lambda d: d.update(schema=99)),
        "schema 99 by a newer pytest-agentperf",
    ),
    "schema wrong type": (lambda t: _mutate(t, lambda d: d.update(schema="1")), "schema version"),
    "runs not a list": (
        lambda t: _mutate(t, lambda d: d.update(runs={})),
        "runs: expected an array",
    ),
    "nan literal": (
        lambda t: t.replace('"samples": [', '"samples": [NaN, ', 1),
        "non-finite number NaN",
    ),
    "infinity": (
        lambda t: t.replace('"duration": ', '"duration": Infinity, "x": ', 1),
        "non-finite number Infinity",
    ),
    "json bomb depth": (lambda t: "[" * 100_000 + "]" * 100_000, "not valid JSON"),
}

# Problems of one entry: that entry is set aside, the rest of the file is used.
ENTRY_CORRUPTIONS = {
    "huge array": (
        lambda t: _mutate(t, _set_run("samples", [0.1] * 30_000)),
        "30000 samples, more than",
    ),
    "samples wrong type": (
        lambda t: _mutate(t, _set_run("samples", "0.1,0.2")),
        "runs[0].samples: expected an array",
    ),
    "sample wrong type": (
        lambda t: _mutate(t, _set_run("samples", [0.1, "x"])),
        "expected numbers only",
    ),
    "bool sample": (lambda t: _mutate(t, _set_run("samples", [True])), "expected numbers only"),
    "negative latency": (
        lambda t: _mutate(t, _set_run("samples", [-1.0, 0.2])),
        "finite, non-negative",
    ),
    "huge number": (lambda t: _mutate(t, _set_run("samples", [1e300])), "finite, non-negative"),
    "requests as string": (
        lambda t: _mutate(t, _set_run("requests", "100")),
        "runs[0].requests: expected a whole number",
    ),
    "requests as bool": (
        lambda t: _mutate(t, _set_run("requests", True)),
        "runs[0].requests: expected a whole number",
    ),
    "errors above requests": (
        lambda t: _mutate(t, _set_run("errors", 10**6)),
        "inconsistent counts",
    ),
    "more samples than n": (lambda t: _mutate(t, _set_latency("n", 1)), "latency.n is 1"),
    "p95 wrong type": (
        lambda t: _mutate(t, _set_latency("p95", [1])),
        "runs[0].latency.p95: expected a number",
    ),
    "missing shape": (
        lambda t: _mutate(t, _set_run("shape", None)),
        "runs[0].shape: expected an object",
    ),
    "run not an object": (
        lambda t: _mutate(t, lambda d: d["runs"].__setitem__(0, 5)),
        "runs[0]: expected an object",
    ),
    "duplicate": (lambda t: _mutate(t, _duplicate), "runs[2]: a second entry for the same"),
    "deep nesting": (lambda t: _mutate(t, _deep), "nested deeper"),
}


@pytest.mark.parametrize("kind", sorted(CORRUPTIONS))
def test_unusable_files_raise_a_baseline_error_naming_file_and_problem(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "baseline.json"
    text = write_valid(path)
    corrupt, problem = CORRUPTIONS[kind]
    path.write_text(corrupt(text), encoding="utf-8")
    with pytest.raises(BaselineError) as info:
        load(path)
    err = info.value
    assert isinstance(err, AgentPerfError)
    assert str(path) in str(err)
    assert problem in str(err), str(err)
    assert err.path == str(path)
    assert err.problem


def _two_runs(path: Path) -> str:
    save(path, [entry(), entry("tests/test_b.py::test_two")], keep_existing=False)
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("kind", sorted(ENTRY_CORRUPTIONS))
def test_an_unreadable_entry_is_set_aside_and_the_others_are_used(
    tmp_path: Path, kind: str
) -> None:
    path = tmp_path / "baseline.json"
    corrupt, problem = ENTRY_CORRUPTIONS[kind]
    path.write_text(corrupt(_two_runs(path)), encoding="utf-8")
    got = load(path)
    assert got is not None
    assert ("tests/test_b.py::test_two", "default") in got.runs
    (message,) = got.problems
    assert str(path) in message and problem in message, message
    if kind != "run not an object":
        assert "of test 'tests/test_a.py::test_one' run 'default' is ignored" in message
    assert len(got.unreadable) == 1


def _set_entry(path: Path, test: str, key: str, value: Any) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    (run,) = [r for r in doc["runs"] if r["test"] == test]
    run[key] = value
    path.write_text(json.dumps(doc), encoding="utf-8")


def test_a_subset_save_keeps_an_unreadable_entry_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    save(path, [entry("t::a"), entry("t::b"), entry("t::c")])
    _set_entry(path, "t::b", "requests", "many")
    result = save(path, [entry("t::c", seed=3)])
    assert (result.written, result.kept, result.unreadable_kept) == (1, 1, 1)
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert [r["test"] for r in doc["runs"]] == ["t::a", "t::c", "t::b"]
    assert doc["runs"][2]["requests"] == "many"
    got = load(path)
    assert got is not None and set(got.runs) == {("t::a", "default"), ("t::c", "default")}
    (message,) = got.problems
    assert "'t::b' run 'default' is ignored" in message and "expected a whole number" in message


@pytest.mark.parametrize("complete", [(), ("t::b",)])
def test_re_recording_the_run_of_an_unreadable_entry_replaces_it(
    tmp_path: Path, complete: tuple[str, ...]
) -> None:
    path = tmp_path / "baseline.json"
    save(path, [entry("t::a"), entry("t::b")])
    _set_entry(path, "t::b", "latency", None)
    new = entry("t::b", name="renamed") if complete else entry("t::b")
    result = save(path, [new], complete=complete)
    assert result.unreadable_kept == 0
    got = load(path)
    assert got is not None and got.problems == ()
    assert set(got.runs) == {("t::a", "default"), new.key}


def test_a_long_test_id_or_run_name_is_read_back(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    long_test, long_run = "t.py::test_" + "x" * 10_000, "run-" + "y" * 10_000
    save(path, [entry(long_test, name=long_run)])
    got = load(path)
    assert got is not None and got.problems == ()
    assert got.get(long_test, long_run) is not None


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    path.write_bytes(bytes(range(256)))
    with pytest.raises(BaselineError, match="not UTF-8"):
        load(path)


def test_oversized_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "baseline.json"
    write_valid(path)
    monkeypatch.setattr(store, "_MAX_FILE_BYTES", 100)
    with pytest.raises(BaselineError, match="larger than"):
        load(path)


def test_a_directory_is_not_a_baseline(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="not a regular file"):
        load(tmp_path)


def test_older_writer_fields_are_tolerated(tmp_path: Path) -> None:
    """Optional fields may be null or absent: a file edited by hand still loads."""
    path = tmp_path / "baseline.json"
    text = write_valid(path)

    def strip(doc: dict[str, Any]) -> None:
        run = doc["runs"][0]
        for key in ("commit", "created", "plugin_version", "tokens_per_call", "cost_per_call"):
            run.pop(key)

    path.write_text(_mutate(text, strip), encoding="utf-8")
    got = load(path)
    assert got is not None
    run = got.get("tests/test_a.py::test_one", "default")
    assert run is not None and run.commit is None and run.figures["cost_per_call"] is None


# --------------------------------------------------------------------------- environment


def test_machine_info_is_filled() -> None:
    m = bl.machine_info()
    assert m.cpu and m.os and m.arch and m.python.count(".") == 2
    assert m.cores is None or m.cores >= 1
    assert m.differences(m) == ()


def test_git_commit_outside_a_repository_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert bl.git_commit(tmp_path) is None


@pytest.mark.parametrize(
    "outcome",
    [
        FileNotFoundError(2, "git"),
        subprocess.TimeoutExpired("git", 2.0),
        subprocess.CompletedProcess(["git"], 0, "not a sha\n", ""),
        subprocess.CompletedProcess(["git"], 128, "", "fatal: not a git repository"),
    ],
)
def test_git_commit_is_failure_tolerant(monkeypatch: pytest.MonkeyPatch, outcome: Any) -> None:
    def fake_run(*args: Any, **kwargs: Any) -> Any:
        assert kwargs["timeout"] <= 5
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    monkeypatch.setattr(environment.subprocess, "run", fake_run)
    assert bl.git_commit() is None


def test_git_commit_reads_the_head(monkeypatch: pytest.MonkeyPatch) -> None:
    sha = "a" * 40
    monkeypatch.setattr(
        environment.subprocess,
        "run",
        lambda *a, **k: subprocess.CompletedProcess(["git"], 0, sha + "\n", ""),
    )
    assert bl.git_commit() == sha


def test_current_environment() -> None:
    env = bl.current_environment()
    assert env.plugin_version
    assert isinstance(env.machine, Machine)
    assert env.commit is None or len(env.commit) == 40


def test_a_run_record_gives_the_same_entry_as_the_result() -> None:
    """The controller saves from run records (also those xdist workers send): a record that
    crossed as JSON gives the entry its result gives."""
    from pytest_agentperf.record import RunRecord

    result = full_result(n=3000)
    from_result = run_from_result("t::x", result, ENV)
    data = json.loads(json.dumps(RunRecord.of("t::x", result).to_dict()))
    from_record = run_from_result("t::x", RunRecord.from_dict(data).result, ENV)
    assert replace(from_record, created="") == replace(from_result, created="")
    # Records carry samples already rounded to microseconds: quantiles agree within 1 µs.
    stored, direct = from_record.latency.samples, from_result.latency.samples
    np.testing.assert_allclose(stored, direct, atol=1.5e-6)
    assert from_record.latency.samples.size == MAX_SAMPLES


def test_a_malformed_record_names_the_field() -> None:
    from pytest_agentperf.codec import DecodeError
    from pytest_agentperf.record import RunRecord

    good = RunRecord.of("t::x", full_result(n=10)).to_dict()
    with pytest.raises(DecodeError, match=r"record\.result\.shape: expected an object"):
        RunRecord.from_dict({**good, "result": {**good["result"], "shape": None}})
    with pytest.raises(DecodeError, match=r"record\.status: 'MAYBE' is not a RunStatus"):
        RunRecord.from_dict({**good, "status": "MAYBE"})


def test_a_name_that_cannot_be_encoded_is_a_baseline_error(tmp_path: Path) -> None:
    path = tmp_path / "baseline.json"
    old = write_valid(path)
    with pytest.raises(BaselineError, match="could not encode the baseline file"):
        save(path, [entry("t::x", name="bad \udc80 name")])
    assert path.read_text(encoding="utf-8") == old
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize("where", ["/dev/null", "folder", "foreign"])
def test_save_refuses_what_is_not_a_baseline_and_leaves_it(tmp_path: Path, where: str) -> None:
    if where == "/dev/null":
        if not os.path.exists("/dev/null"):
            pytest.skip("POSIX device")
        path = Path("/dev/null")
    elif where == "folder":
        path = tmp_path / "baseline.json"
        path.mkdir()
    else:
        path = tmp_path / "baseline.json"
        path.write_text('{"benchmarks": []}', encoding="utf-8")
    with pytest.raises(BaselineError, match=f"refusing to write {path}: ") as info:
        save(path, [entry()])
    assert info.value.problem
    if where == "foreign":
        assert path.read_text(encoding="utf-8") == '{"benchmarks": []}'
    assert not (path.parent / "baseline.json.lock").exists()
    assert not Path("/dev/null.lock").exists()


def test_a_file_the_reader_would_reject_as_too_large_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "baseline.json"
    old = write_valid(path)
    monkeypatch.setattr(store, "_MAX_RUNS", 2)
    with pytest.raises(BaselineError, match=r"3 runs in .* more than the 2 runs"):
        save(path, [entry("t::b"), entry("t::c")])
    assert path.read_text(encoding="utf-8") == old
    monkeypatch.setattr(store, "_MAX_RUNS", 20_000)
    monkeypatch.setattr(store, "_MAX_FILE_BYTES", 1000)
    with pytest.raises(BaselineError, match="own file with --agentperf-baseline-path"):
        save(path, [entry("t::b")])
    assert path.read_text(encoding="utf-8") == old
