"""Regenerate pytest_agentperf/data/prices.json from a local copy of LiteLLM's price table.

Usage::

    curl -o /tmp/litellm.json \\
      https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json
    python scripts/update_prices.py /tmp/litellm.json [--commit SHA] [--add MODEL ...]

Keeps the curated models already in the bundled table (plus any ``--add``), copies only the
price fields, records the date and source in ``_meta``, keeps ``_aliases``, and reports models
that LiteLLM no longer lists (they keep their old row) and prices that changed. No network.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BUNDLED = ROOT / "pytest_agentperf" / "data" / "prices.json"
FIELDS = (
    "input_cost_per_token",
    "output_cost_per_token",
    "cache_read_input_token_cost",
    "cache_creation_input_token_cost",
    "output_cost_per_reasoning_token",
    "litellm_provider",
    "mode",
)


def curated_row(source: dict[str, Any]) -> dict[str, Any] | None:
    """The fields we keep of one LiteLLM row, or None when it has no token prices."""
    row = {f: source[f] for f in FIELDS if f in source}
    ok = all(
        isinstance(row.get(f), (int, float)) and not isinstance(row.get(f), bool)
        for f in ("input_cost_per_token", "output_cost_per_token")
    )
    return row if ok else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("litellm_json", type=Path, help="local copy of LiteLLM's price table")
    parser.add_argument("--commit", default=None, help="LiteLLM commit the copy comes from")
    parser.add_argument("--add", nargs="*", default=[], metavar="MODEL", help="models to add")
    parser.add_argument("--output", type=Path, default=BUNDLED, help="file to write")
    args = parser.parse_args(argv)

    source = json.loads(args.litellm_json.read_text("utf-8"))
    current = json.loads(BUNDLED.read_text("utf-8"))
    names = [k for k in current if not k.startswith("_")] + list(args.add)

    rows: dict[str, dict[str, Any]] = {}
    missing, changed = [], []
    for name in dict.fromkeys(names):
        new = curated_row(source[name]) if isinstance(source.get(name), dict) else None
        old = current.get(name)
        if new is None:
            if old is None:
                print(f"error: {name!r} is neither in LiteLLM's table nor bundled", file=sys.stderr)
                return 2
            missing.append(name)
            rows[name] = old
            continue
        if old is not None and old != new:
            changed.append(name)
        rows[name] = new

    meta = {
        "date": dt.date.today().isoformat(),
        "source": "LiteLLM model_prices_and_context_window.json (https://github.com/BerriAI/litellm)",
        "source_commit": args.commit or "unknown",
        "units": "USD per token",
        "note": "Curated subset; regenerate with scripts/update_prices.py PATH_TO_LITELLM_JSON",
    }
    out = {"_meta": meta, "_aliases": current.get("_aliases", {}), **dict(sorted(rows.items()))}
    args.output.write_text(json.dumps(out, indent=2) + "\n", "utf-8")
    print(f"wrote {len(rows)} models to {args.output}")
    for name in changed:
        print(f"  changed: {name}")
    for name in missing:
        print(f"  not in LiteLLM's table any more (kept the old row): {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
