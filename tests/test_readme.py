"""README stays true: every configuration key documented, the set-up commands present."""
import os
import re

from slicebox.config import DEFAULTS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme() -> str:
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        return fh.read()


def test_every_configuration_key_is_documented():
    readme = _readme()
    missing = [k for k in DEFAULTS if f"`SLICEBOX_{k}`" not in readme]
    assert missing == []


def test_readme_has_the_two_set_up_commands_and_ci_runs_the_test_one():
    readme = _readme()
    blocks = re.findall(r"```sh\n(python3 -m venv .*?)\n```", readme)
    assert any("slicebox serve" in b for b in blocks)
    test_command = [b for b in blocks if "pytest" in b]
    assert len(test_command) == 1
    with open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8") as fh:
        ci = fh.read()
    assert "README.md" in ci and "pip install -e '\\.\\[test\\]'" in ci
