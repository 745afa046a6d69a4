import subprocess
import sys

from fastfix import __version__
from fastfix.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == __version__


def test_console_script_runs():
    out = subprocess.run(
        [sys.executable, "-m", "fastfix.cli", "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    assert "version" in out.stdout
