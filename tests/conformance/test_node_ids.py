"""A provider author's run of the bundled suite names its failures readably.

``pytest --pyargs ostinato_conformance.cli`` from the author's own project collects the suite
from outside that project's rootdir; the failing tests must be named
``ostinato_conformance/cli.py::...``, not ``::...``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_failures_of_the_bundled_suite_have_a_path_in_their_name(tmp_path: Path) -> None:
    shutil.copy(HERE / "broken_providers.py", tmp_path)
    command = [
        sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
        "--pyargs", "ostinato_conformance.cli",
        "--ostinato-provider=broken_providers:FiresTimersEarly",
        "-k", "test_delayed_message_is_not_handed_out_before_visible_at",
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    failed = [line for line in result.stdout.splitlines() if line.startswith("FAILED ")]
    assert failed, result.stdout + result.stderr
    for line in failed:
        assert line.startswith("FAILED ostinato_conformance/cli.py::TestProviderFromCommandLine::")
