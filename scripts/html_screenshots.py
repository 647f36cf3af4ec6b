"""Make the HTML report's screenshots in docs/img/: one per file of examples/.

Runs each example file with ``--agentperf-html`` and photographs the top of the page (the
overview and the first runs' charts) in headless Chromium, the browser of the report's own
test. Needs the dev extra, ``chromium`` and ``chromedriver``:

    .venv/bin/python scripts/html_screenshots.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIDTH, HEIGHT = 1280, 1500


def render(example: Path, out: Path) -> None:
    """Run one example file, writing its HTML report to ``out``."""
    command = [sys.executable, "-m", "pytest", str(example), "-q", "-p", "no:cacheprovider"]
    subprocess.run(
        [*command, "-o", "addopts=", "-o", "testpaths=examples", f"--agentperf-html={out}"],
        cwd=ROOT,
        check=False,  # an example whose budget broke still makes a page worth showing
        capture_output=True,
    )
    if not out.exists():
        raise SystemExit(f"{example.name}: no report written")


def main() -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"):
        options.add_argument(arg)
    options.add_argument(f"--window-size={WIDTH},{HEIGHT}")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    target = ROOT / "docs" / "img"
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for example in sorted((ROOT / "examples").glob("test_*.py")):
                page = Path(tmp) / f"{example.stem}.html"
                render(example, page)
                driver.get(page.as_uri())
                png = target / f"html-report-{example.stem.removeprefix('test_')}.png"
                driver.save_screenshot(str(png))
                print(f"{png.relative_to(ROOT)}: {png.stat().st_size:,} bytes")
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
