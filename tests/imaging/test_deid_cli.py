"""``cxrlab deid`` and ``cxrlab phantom hospital`` as a user runs them: bad input, the secret, exit codes."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from imaging_helpers import chest_like, make_dicom

from cxrlab.datasets.phantom import TRANSFER_SYNTAXES, make_hospital


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_hospital(tmp_path_factory.mktemp("hospital"), patients=1, seed=5, size=96).root


def _invoke(*args: str, columns: int = 200) -> tuple[int, str, str]:
    """Run the real console entry point (errors become one line and an exit code there)."""
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1", "COLUMNS": str(columns)}
    done = subprocess.run([sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True,
                          check=False, env=env)  # fmt: skip
    return done.returncode, done.stdout, done.stderr


def _bad_folder(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    good = make_dicom(src, "good.dcm", chest_like(64, 48), sop_instance_uid="1.2.3.100")
    make_dicom(src, "j2k.dcm", chest_like(64, 48, seed=1), transfer_syntax=TRANSFER_SYNTAXES["j2k_lossless"],
               sop_instance_uid="1.2.3.101")  # fmt: skip
    (src / "notes.txt").write_text("ward round notes, not a DICOM\n")
    data = good.read_bytes()
    (src / "cut_native.dcm").write_bytes(data[: len(data) - 3000])
    j2k = (src / "j2k.dcm").read_bytes()
    (src / "cut_j2k.dcm").write_bytes(j2k[: len(j2k) - 200])
    make_dicom(src, "no_pixels.dcm", chest_like(64, 48), omit_pixel_data=True, sop_instance_uid="1.2.3.102")
    return src


def test_bad_input_is_named_in_one_line_and_the_rest_goes_on(tmp_path: Path) -> None:
    src = _bad_folder(tmp_path)
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    code, stdout, stderr = _invoke("deid", str(src), str(tmp_path / "out"), "--profile", "basic")
    assert code == 1, stdout + stderr
    lines = [line for line in stderr.splitlines() if line.startswith("failed:")]
    assert len(lines) == 4, stderr
    joined = "\n".join(lines)
    assert "notes.txt: not a DICOM file" in joined
    assert "cut_native.dcm: truncated" in joined and "cut_j2k.dcm: truncated" in joined
    assert "no_pixels.dcm: the file has no Pixel Data" in joined
    assert "Traceback" not in stderr
    assert len(list((tmp_path / "out").glob("*.dicom"))) == 2
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # originals never touched


def test_the_secret_is_generated_beside_out_and_reused(hospital: Path, tmp_path: Path) -> None:
    out = tmp_path / "shared" / "out"
    code, _, stderr = _invoke("deid", str(hospital), str(out), "--json")
    assert code == 0, stderr
    secret = tmp_path / "shared" / "out.deid-secret"
    assert f"generated {secret}" in stderr.replace("\n", "")
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert not any(p.name.endswith("secret") for p in out.rglob("*"))
    names = sorted(p.name for p in out.glob("*.dicom"))
    code, _, stderr = _invoke("deid", str(hospital), str(tmp_path / "shared" / "out"))
    assert code == 0 and "generated" not in stderr
    assert sorted(p.name for p in out.glob("*.dicom")) == names


@pytest.mark.parametrize("content", [None, b"", b"  \n"], ids=["missing", "empty", "blank"])
def test_an_unreadable_or_empty_secret_is_refused(content: bytes | None, tmp_path: Path) -> None:
    from cxrlab.errors import CxrlabError
    from cxrlab.imaging.deid import read_secret

    key = tmp_path / "key"
    if content is not None:
        key.write_bytes(content)
    with pytest.raises(CxrlabError, match=f"{key}: (cannot read the secret file|the secret file is empty)"):
        read_secret(key)


def test_an_empty_secret_file_is_one_line_exit_1(hospital: Path, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("\n")
    code, _, stderr = _invoke("deid", str(hospital), str(tmp_path / "out"), "--secret-file", str(key))
    assert code == 1
    assert stderr.strip().count("\n") == 0 and f"{key}: the secret file is empty" in stderr
    assert not (tmp_path / "out").exists()


def test_secret_or_map_inside_out_is_a_usage_error(hospital: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "key").write_text("k")
    code, _, stderr = _invoke("deid", str(hospital), str(out), "--secret-file", str(out / "key"))
    assert code == 2 and "must be outside the output folder" in stderr
    code, _, stderr = _invoke("deid", str(hospital), str(out), "--map", str(out / "map.csv"))
    assert code == 2 and "mapping file must be outside" in stderr


def test_map_is_private_and_the_tool_says_so(hospital: Path, tmp_path: Path) -> None:
    map_path = tmp_path / "private" / "map.csv"
    code, stdout, stderr = _invoke("deid", str(hospital), str(tmp_path / "out"), "--map", str(map_path))
    assert code == 0, stderr
    assert "keep it private" in stderr.replace("\n", " ")
    assert stat.S_IMODE(map_path.stat().st_mode) == 0o600
    rows = map_path.read_text().splitlines()
    assert rows[0].startswith("source,output,patient_id") and len(rows) == 1 + len(
        list((tmp_path / "out").glob("*.dicom"))
    )
    assert "Held back" in stdout and "burned-in" in stdout


def test_vindr_with_a_basic_option_is_a_usage_error(hospital: Path, tmp_path: Path) -> None:
    code, _, stderr = _invoke("deid", str(hospital), str(tmp_path / "o"), "--retain-dates-shifted")
    assert code == 2 and "--profile must be basic for the PS3.15 options" in stderr


def test_deid_is_in_the_imaging_panel() -> None:
    _, stdout, _ = _invoke("--help")
    imaging = stdout.split("2. Imaging")[1].split("3. Labels")[0]
    assert "deid" in imaging


def test_phantom_hospital_cli_writes_what_the_library_writes(tmp_path: Path) -> None:
    from cxrlab.imaging.tags import phi_check

    args = ["phantom", "hospital", str(tmp_path / "cli"), "--patients", "1", "--size", "64", "--seed", "2"]
    code, stdout, stderr = _invoke(*args, "--json")
    assert code == 0, stderr
    make_hospital(tmp_path / "lib", patients=1, size=64, seed=2)
    files = sorted(p.relative_to(tmp_path / "cli") for p in (tmp_path / "cli").rglob("*.dcm"))
    assert len(files) >= 5 and '"files"' in stdout
    for rel in files:  # the same seed: byte-identical files
        assert (tmp_path / "cli" / rel).read_bytes() == (tmp_path / "lib" / rel).read_bytes()
    findings, _, checked = phi_check(tmp_path / "cli")
    assert checked == len(files) and len({f.file for f in findings}) == checked
