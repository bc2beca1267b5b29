"""docs/cli.md is generated from the Typer app; this keeps it in sync with `--help`."""

import subprocess
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_cli_reference_is_current(tmp_path):
    fresh = tmp_path / "cli.md"
    subprocess.run(
        [sys.executable, "-m", "typer", "gsavl_cli.cli", "utils", "docs", "--name", "gsavl", "--output", str(fresh)],
        check=True,
        capture_output=True,
    )
    assert fresh.read_text() == (DOCS / "cli.md").read_text(), (
        "docs/cli.md is stale: run `python -m typer gsavl_cli.cli utils docs --name gsavl --output docs/cli.md`"
    )


def test_readme_commands_exist():
    readme = (DOCS.parent / "README.md").read_text()
    assert "pip install -e '.[test]' && python -m pytest -q" in readme
    ci = (DOCS.parent / ".ci" / "run").read_text()
    assert "pip install -e '.[test]'" in ci and "python -m pytest -q" in ci
