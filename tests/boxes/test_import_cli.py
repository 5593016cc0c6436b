"""`slicebox import` as a user runs it: a subprocess uploading to a real `slicebox serve`."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from boxproc import ROOT, BoxProcess
from factories import make_dicom_bytes

pytestmark = pytest.mark.slow


@pytest.fixture
def box(tmp_path):
    box = BoxProcess("importer", str(tmp_path / "box")).start()
    yield box
    box.stop()


def run_import(*args: str, env: dict | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = ROOT + os.pathsep + full_env.get("PYTHONPATH", "")
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "slicebox.cli", "import", *args], env=full_env,
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def test_import_folders_with_progress_summary_and_exit_status(box, tmp_path):
    folder = tmp_path / "scans"
    (folder / "a" / "b").mkdir(parents=True)
    datas = [make_dicom_bytes(PatientID=f"CLI{i % 3}", rows=32, columns=32) for i in range(12)]
    for i, data in enumerate(datas):
        sub = folder / ("a" if i % 2 else "a/b")
        (sub / f"img{i}.dcm").write_bytes(data)
    (folder / "README.txt").write_text("not an image")
    (folder / ".DS_Store").write_bytes(b"hidden: skipped")
    single = tmp_path / "single.dcm"
    single.write_bytes(make_dicom_bytes(PatientID="SINGLE"))

    r = run_import(str(folder), str(single), "--url", box.url, "--user", "admin", "--password", "secret",
                   "--session", "batch-1", "--parallel", "4")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "14 files" in r.stdout and "13 added, 0 duplicate, 1 rejected" in r.stdout, r.stdout
    assert "rejected: " in r.stdout and "README.txt" in r.stdout
    # the progress bar: files done, bytes at 100 %, a rate and the outcome counts
    assert "14/14 files" in r.stderr and "100%" in r.stderr, r.stderr
    assert "B/s" in r.stderr and "added=13" in r.stderr and "rejected=1" in r.stderr
    sessions = box.json("GET", "/import/sessions")
    assert [(s["name"], s["filesImported"], s["filesAdded"], s["filesRejected"]) for s in sessions] == \
        [("batch-1", 13, 13, 1)]
    assert box.count_images() == 13
    assert len(box.json("GET", f"/import/sessions/{sessions[0]['id']}/images")) == 13
    stored = sorted(bytes(box.request("GET", f"/images/{i['id']}").data)
                    for i in box.json("GET", f"/import/sessions/{sessions[0]['id']}/images"))
    assert stored == sorted(datas + [single.read_bytes()])

    # again, to "this box" (URL and superuser from the SLICEBOX_* settings): all duplicates, exit 0
    (folder / "README.txt").unlink()
    env = {"SLICEBOX_HOST": "127.0.0.1", "SLICEBOX_PORT": str(box.port), "SLICEBOX_SUPERUSER": "admin",
           "SLICEBOX_SUPERUSER_PASSWORD": "secret", "SLICEBOX_PUBLIC_URL": ""}
    r = run_import(str(folder), "--session", "batch-1", env=env)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "0 added, 12 duplicate, 0 rejected" in r.stdout, r.stdout
    assert "12 imported" not in r.stdout and "25 imported, 13 added, 1 rejected in total" in r.stdout
    assert box.count_images() == 13


def test_wrong_password_or_no_box_is_exit_2(box, tmp_path):
    f = tmp_path / "x.dcm"
    f.write_bytes(make_dicom_bytes())
    r = run_import(str(f), "--url", box.url, "--user", "admin", "--password", "wrong")
    assert r.returncode == 2 and "refused" in r.stderr, (r.stdout, r.stderr)
    r = run_import(str(tmp_path / "missing"), "--url", box.url, "--user", "admin", "--password", "secret")
    assert r.returncode == 2 and "no such file" in r.stderr
    assert box.count_images() == 0
