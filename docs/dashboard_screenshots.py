#!/usr/bin/env python3
"""Regenerate the screenshots of docs/dashboard.md: ``python3 docs/dashboard_screenshots.py``.

They are taken by the dashboard's browser tests (headless Chromium, see
tests/http/test_dashboard_browser.py) while they run, so the pictures show exactly what the
tests checked. Needs Debian's ``chromium``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "docs" / "images"


def main() -> int:
    IMAGES.mkdir(exist_ok=True)
    env = dict(os.environ, OSTINATO_SCREENSHOTS=str(IMAGES))
    test = "tests/http/test_dashboard_browser.py"
    command = [sys.executable, "dev.py", "test", test, "-q", "-p", "no:cacheprovider", "-rs"]
    result = subprocess.run(command, cwd=ROOT, env=env)
    for image in sorted(IMAGES.glob("dashboard-*.png")):
        print(f"{image.relative_to(ROOT)}: {image.stat().st_size // 1024} KiB")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
