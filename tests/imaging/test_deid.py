"""``deid`` on a phantom hospital export and on the real DICOMs: what remains, pixels, grouping, determinism.

Every check reads the profile tables independently (the csv module) and walks every dataset to every
depth, so a sequence or a private tag the engine forgot shows up here.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset

from conftest import realdata_path
from cxrlab.imaging.deid import JOURNAL, OUTPUT_SUFFIX, deid, output_name
from cxrlab.imaging.deid_profile import PROFILE_DIR, ProfileOptions
from cxrlab.imaging.tags import phi_check, phi_in_dataset

FILE_META_KEPT = {0x00020000, 0x00020001, 0x00020002, 0x00020003, 0x00020010, 0x00020012, 0x00020013}


def _table(name: str) -> list[dict[str, str]]:
    with open(PROFILE_DIR / name, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def _tag(text: str) -> int | None:
    group, element = text.strip("()").split(",")
    return (
        None
        if not (group + element).isalnum() or "X" in group + element or "G" in group
        else int(group + element, 16)
    )


BASIC = {t: row["basic"] for row in _table("basic_ps315_annex_e.csv") if (t := _tag(row["tag"])) is not None}
WHITELIST = {_tag(row["tag"]) for row in _table("vindr_whitelist.csv")}


def walk(ds: Dataset) -> Iterator[Any]:
    """Every element at every depth."""
    for elem in ds:
        yield elem
        if elem.VR == "SQ":
            for item in elem.value:
                yield from walk(item)


def read(path: Path) -> pydicom.FileDataset:
    return pydicom.dcmread(path)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob(f"*{OUTPUT_SUFFIX}"))}


def mapping(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def hospital(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from cxrlab.datasets.phantom import make_hospital

    return make_hospital(tmp_path_factory.mktemp("hospital"), patients=3, seed=3, size=128).root


@pytest.fixture(scope="module")
def secret(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "secret.txt"
    path.write_text("a test secret, never a real one\n")
    return path


def _run(src: Path, out: Path, profile: str, secret: Path, **kw: Any) -> Any:
    map_path = out.parent / f"{out.name}-map.csv"
    result = deid(src, out, ProfileOptions(profile), secret_file=secret, map_path=map_path, **kw)
    return result, mapping(map_path)


@pytest.fixture(scope="module")
def runs(hospital: Path, secret: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Both profiles over the hospital phantom, once: (result, mapping rows, output folder) per profile."""
    done = {}
    for profile in ("vindr", "basic"):
        out = tmp_path_factory.mktemp(profile) / "out"
        done[profile] = (*_run(hospital, out, profile, secret), out)
    return done


@pytest.fixture(scope="module")
def vindr_run(runs: dict[str, Any]) -> Any:
    return runs["vindr"]


@pytest.fixture(scope="module")
def basic_run(runs: dict[str, Any]) -> Any:
    return runs["basic"]


def test_burned_in_files_are_listed_and_left_out(vindr_run: Any) -> None:
    result, rows, out = vindr_run
    assert result.total == 16 and result.written == 14 and len(result.held) == 2
    assert {h["kind"] for h in result.held} == {"burned-in"}
    reasons = " ".join(h["error"] for h in result.held)
    assert "BurnedInAnnotation is YES" in reasons and "screen save" in reasons
    assert len(outputs(out)) == 14 == len(rows)
    assert not result.bad_input


def test_vindr_leaves_only_the_whitelist(vindr_run: Any) -> None:
    _, _, out = vindr_run
    for path in out.glob("*.dicom"):
        ds = read(path)
        extra = {f"{e.tag} {e.keyword}" for e in walk(ds) if int(e.tag) not in WHITELIST}
        assert not extra, f"{path.name}: {extra}"
        assert {int(e.tag) for e in ds.file_meta} <= FILE_META_KEPT
    findings, unreadable, checked = phi_check(out)
    assert (findings, unreadable, checked) == ([], [], 14)


def _originals(sources: list[Path]) -> dict[int, set[str]]:
    """Every non-empty value each attribute of the table has anywhere in the sources."""
    values: dict[int, set[str]] = {}
    for path in sources:
        for elem in walk(read(path)):
            if int(elem.tag) in BASIC and elem.VR != "SQ" and elem.value not in (None, "", b""):
                values.setdefault(int(elem.tag), set()).add(str(elem.value))
    return values


def assert_no_original_value(sources: list[Path], outputs: list[Path]) -> int:
    """Attribute by attribute against Table E.1-1: X gone, the rest empty or holding no value of the sources
    (sequences included, no private tag left); returns how many table attributes were looked at."""
    originals = _originals(sources)
    checked = 0
    for path in outputs:
        for elem in walk(read(path)):
            tag = int(elem.tag)
            assert not elem.tag.is_private, f"{path.name}: private {elem.tag}"
            if tag not in BASIC:
                continue
            checked += 1
            assert BASIC[tag] != "X", f"{path.name}: {elem.keyword} should have been removed"
            if elem.VR != "SQ" and elem.value not in (None, "", b""):
                assert str(elem.value) not in originals.get(tag, set()), f"{path.name}: {elem.keyword} kept"
    return checked


def test_basic_no_attribute_of_the_table_keeps_an_original_value(hospital: Path, basic_run: Any) -> None:
    _, _, out = basic_run
    sources = sorted(hospital.rglob("*.dcm"))
    assert len(_originals(sources)) > 40, "the phantom should exercise many rows of the table"
    assert assert_no_original_value(sources, sorted(out.glob("*.dicom"))) > 100


def test_basic_passes_phi_check(basic_run: Any) -> None:
    # the basic profile writes the keyed pseudonym as Patient ID (PS3.15 allows a dummy for Z/D) so that a
    # patient's images stay linked; phi-check accepts it because Patient Identity Removed says YES
    _, _, out = basic_run
    findings, unreadable, checked = phi_check(out)
    assert not unreadable and checked == 14
    assert findings == []
    assert all(pydicom.dcmread(p).PatientID for p in out.glob("*.dicom"))


def test_phi_check_flags_a_patient_id_that_is_not_a_declared_pseudonym(basic_run: Any) -> None:
    _, _, out = basic_run
    ds = pydicom.dcmread(next(out.glob("*.dicom")))
    ds.PatientIdentityRemoved = "NO"
    assert {f.keyword for f in phi_in_dataset(ds)} == {"PatientID"}
    ds.PatientIdentityRemoved = "YES"
    ds.PatientID = "MRN-0042"
    assert {f.keyword for f in phi_in_dataset(ds)} == {"PatientID"}


@pytest.mark.parametrize("run", ["vindr_run", "basic_run"])
def test_pixels_are_the_same_bytes_in_the_same_syntax(run: str, hospital: Path, request: Any) -> None:
    _, rows, out = request.getfixturevalue(run)
    syntaxes = set()
    for row in rows:
        before, after = read(hospital / row["source"]), read(out / row["output"])
        assert after.PixelData == before.PixelData
        assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID
        assert np.array_equal(after.pixel_array, before.pixel_array)
        syntaxes.add(before.file_meta.TransferSyntaxUID.name)
    assert any("2000" in s for s in syntaxes) and any("Lossless" in s and "JPEG" in s for s in syntaxes)


@pytest.mark.parametrize("run", ["vindr_run", "basic_run"])
def test_study_and_series_grouping_is_kept(run: str, request: Any) -> None:
    _, rows, out = request.getfixturevalue(run)
    for original, pseudonym in (("study_uid", "study_pseudonym"), ("series_uid", "series_pseudonym")):
        pairs = {(r[original], r[pseudonym]) for r in rows}
        assert len({a for a, _ in pairs}) == len({b for _, b in pairs}) == len(pairs)
    for row in rows:
        ds = read(out / row["output"])
        assert (
            ds.StudyInstanceUID == row["study_pseudonym"] and ds.SeriesInstanceUID == row["series_pseudonym"]
        )
        assert ds.SOPInstanceUID == row["sop_pseudonym"] == ds.file_meta.MediaStorageSOPInstanceUID
        assert row["output"] == output_name(row["sop_pseudonym"])
        assert ds.PatientIdentityRemoved == "YES" and ds.DeidentificationMethod


def test_same_secret_same_bytes_other_secret_other_uids(
    hospital: Path, secret: Path, vindr_run: Any, tmp_path: Path
) -> None:
    _, rows, out = vindr_run
    _again, _ = _run(hospital, tmp_path / "again", "vindr", secret)
    assert outputs(tmp_path / "again") == outputs(out)
    other = tmp_path / "other.key"
    other.write_text("another secret")
    _, other_rows = _run(hospital, tmp_path / "other", "vindr", other)
    assert not {r["sop_pseudonym"] for r in rows} & {r["sop_pseudonym"] for r in other_rows}
    assert not {r["study_pseudonym"] for r in rows} & {r["study_pseudonym"] for r in other_rows}
    assert not set(outputs(out)) & set(outputs(tmp_path / "other"))


def test_the_output_folder_names_no_source_and_holds_no_secret(
    vindr_run: Any, hospital: Path, secret: Path
) -> None:
    _, rows, out = vindr_run
    text = b"".join(p.read_bytes() for p in out.rglob("*") if p.is_file())
    for row in rows:
        for column in ("source", "patient_id", "study_uid", "sop_uid"):
            assert row[column].encode() not in text, column
    assert secret.read_bytes().strip() not in text
    assert b"MRN" not in text


def test_a_rerun_skips_finished_files_and_refuses_other_settings(
    hospital: Path, secret: Path, tmp_path: Path
) -> None:
    from cxrlab.errors import UsageError

    src = tmp_path / "src"
    shutil.copytree(hospital, src)
    _first, _ = _run(src, tmp_path / "out", "vindr", secret)
    before = outputs(tmp_path / "out")
    second, _ = _run(src, tmp_path / "out", "vindr", secret)
    assert (second.written, second.skipped, len(second.held)) == (0, 14, 2)  # held files are looked at again
    assert outputs(tmp_path / "out") == before
    changed = next(src.rglob("IM0001.dcm"))
    changed.write_bytes(changed.read_bytes())  # new modification time: redone, same result
    third, _ = _run(src, tmp_path / "out", "vindr", secret)
    assert (third.written, third.skipped) == (1, 13) and outputs(tmp_path / "out") == before
    with pytest.raises(UsageError, match="other settings"):
        _run(src, tmp_path / "out", "basic", secret)
    other = tmp_path / "other.key"
    other.write_text("x")
    with pytest.raises(UsageError, match="another secret"):
        _run(src, tmp_path / "out", "vindr", other)


def test_a_run_killed_after_writing_resumes_to_the_same_output(
    hospital: Path, secret: Path, vindr_run: Any, tmp_path: Path
) -> None:
    """The worst moment: a file written under its final name, its journal line not yet; a stray temp file."""
    import subprocess
    import sys

    out = tmp_path / "out"
    script = (
        "import os, sys\n"
        "import cxrlab.imaging.deid as d\n"
        "from cxrlab.imaging.deid_profile import ProfileOptions\n"
        "real, calls = d.deid_file, []\n"
        "def dying(task, options):\n"
        "    record = real(task, options)\n"
        "    calls.append(1)\n"
        "    if len(calls) == 6:\n"
        "        open(os.path.join(task.output, '.half.dicom.1.tmp'), 'wb').write(b'half')\n"
        "        os._exit(137)\n"
        "    return record\n"
        "d.deid_file = dying\n"
        "d.deid(sys.argv[1], sys.argv[2], ProfileOptions('vindr'), secret_file=sys.argv[3])\n"
    )
    killed = subprocess.run([sys.executable, "-c", script, str(hospital), str(out), str(secret)], check=False)
    assert killed.returncode == 137
    assert 1 <= len(outputs(out)) < 14
    journal = [json.loads(line) for line in (out / JOURNAL).read_text().splitlines()]
    assert len(journal) == 5  # the sixth file is written but not journaled
    done = sum(r["status"] == "ok" for r in journal)
    resumed = deid(hospital, out, ProfileOptions("vindr"), secret_file=secret)
    assert resumed.skipped == done and resumed.written == 14 - done
    assert outputs(out) == outputs(vindr_run[2])
    assert not list(out.glob(".*.tmp")), "a temporary file of the killed run is left"


def test_two_workers_give_the_same_bytes(
    hospital: Path, secret: Path, vindr_run: Any, tmp_path: Path
) -> None:
    result = deid(hospital, tmp_path / "two", ProfileOptions("vindr"), secret_file=secret, workers=2)
    assert result.written == 14
    assert outputs(tmp_path / "two") == outputs(vindr_run[2])


def test_allow_burned_in_writes_them_too(hospital: Path, secret: Path, tmp_path: Path) -> None:
    result = deid(
        hospital, tmp_path / "all", ProfileOptions("vindr"), secret_file=secret, allow_burned_in=True
    )
    assert (result.written, result.held) == (16, [])


def test_retained_options_keep_characteristics_and_shift_dates(basic_run: Any, hospital: Path, secret: Path,
                                                               tmp_path: Path) -> None:  # fmt: skip
    options = ProfileOptions("basic", retain_patient_characteristics=True, retain_dates_shifted=True)
    map_path = tmp_path / "map.csv"
    deid(hospital, tmp_path / "kept", options, secret_file=secret, map_path=map_path)
    import datetime as dt

    for row in mapping(map_path):
        before, after = read(hospital / row["source"]), read(tmp_path / "kept" / row["output"])
        assert (after.PatientSex, after.PatientAge, after.PatientWeight) == (
            before.PatientSex,
            before.PatientAge,
            before.PatientWeight,
        )
        shift = dt.timedelta(days=int(row["day_shift"]))
        study = dt.datetime.strptime(before.StudyDate, "%Y%m%d") - shift
        assert after.StudyDate == study.strftime("%Y%m%d")
        assert after.PatientBirthDate == "" and after.PatientName == ""
    shifts = {(r["patient_id"], r["day_shift"]) for r in mapping(map_path)}
    assert len(shifts) == len({p for p, _ in shifts}) == 3  # one shift per patient


# ---------------------------------------------------------------- the real DICOMs


def test_real_dicoms_with_one_shared_sop_instance_uid(secret: Path, tmp_path: Path) -> None:
    """The two real files share their SOP Instance UID (one is a modified copy): the second is held back."""
    src = realdata_path("images", "dicom")
    result, _rows = _run(src, tmp_path / "out", "vindr", secret)
    assert result.written == 1 and [h["kind"] for h in result.held] == ["collision"]
    assert "same SOP Instance UID" in result.held[0]["error"]


@pytest.mark.parametrize(
    "name", ["1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm", "Fake_MONOHR1.dcm"]
)
@pytest.mark.parametrize("profile", ["vindr", "basic"])
def test_real_dicom_deidentified(name: str, profile: str, secret: Path, tmp_path: Path) -> None:
    source = realdata_path("images", "dicom", name)
    before_bytes = source.read_bytes()
    result, rows = _run(source, tmp_path / "out", profile, secret)
    assert result.written == 1, result.held
    assert source.read_bytes() == before_bytes  # the original is never touched
    before, after = read(source), read(tmp_path / "out" / rows[0]["output"])
    assert after.PixelData == before.PixelData
    assert np.array_equal(after.pixel_array, before.pixel_array)
    assert after.PhotometricInterpretation == before.PhotometricInterpretation
    findings, unreadable, _ = phi_check(tmp_path / "out")
    assert not unreadable
    if profile == "vindr":
        assert findings == [] and {int(e.tag) for e in walk(after)} <= WHITELIST
    else:
        assert findings == []  # the keyed Patient ID pseudonym is accepted under Patient Identity Removed
        assert after.PatientID == rows[0]["patient_pseudonym"] != before.PatientID
        assert assert_no_original_value([source], [tmp_path / "out" / rows[0]["output"]]) >= 8
        assert after.PatientName == "" and after.StudyDate == "" and after.PatientSex == ""
        assert after.ViewPosition == "PA"  # not in the table: kept


def test_the_hospital_phantom_holds_what_deid_must_find(hospital: Path) -> None:
    from cxrlab.datasets.phantom import TRANSFER_SYNTAXES

    files = sorted(hospital.rglob("*.dcm"))
    datasets = [read(p) for p in files]
    by_patient: dict[str, set[str]] = {}
    for ds in datasets:
        by_patient.setdefault(str(ds.PatientID), set()).add(str(ds.StudyInstanceUID))
    assert len(by_patient) == 3 and all(len(studies) >= 2 for studies in by_patient.values())
    syntaxes = {str(ds.file_meta.TransferSyntaxUID) for ds in datasets}
    assert {TRANSFER_SYNTAXES[n] for n in ("j2k_lossless", "jpeg_lossless_sv1", "explicit_le")} <= syntaxes
    ds = datasets[0]
    assert ds.PatientName and ds.PatientBirthDate and ds.InstitutionName and ds.ReferringPhysicianName
    assert any(e.tag.is_private for e in walk(ds.RequestAttributesSequence[0]))  # private inside a sequence
    assert ds.ContributingEquipmentSequence[0].OperatorsName
    assert ds.file_meta.SourceApplicationEntityTitle
    assert sum(str(d.get("BurnedInAnnotation")) == "YES" for d in datasets) == 1
    assert sum("SCREEN SAVE" in list(d.get("ImageType", [])) for d in datasets) == 1


def test_a_file_without_transfer_syntax_in_its_meta(secret: Path, tmp_path: Path) -> None:
    """Some VinDr-CXR files lack (0002,0010): the syntax is inferred and written into the new meta."""
    from cxrlab.datasets.phantom import TRANSFER_SYNTAXES, DicomSpec, write_dicom

    stored = (np.arange(64 * 48, dtype=np.uint16).reshape(64, 48) % 4096).astype(np.uint16)
    for name in ("explicit_le", "j2k_lossless"):
        spec = DicomSpec(transfer_syntax=TRANSFER_SYNTAXES[name], omit_transfer_syntax_in_meta=True,
                         sop_instance_uid=f"1.2.3.{len(name)}")  # fmt: skip
        write_dicom(tmp_path / "src" / f"{name}.dcm", stored, spec)
    result, rows = _run(tmp_path / "src", tmp_path / "out", "vindr", secret)
    assert result.written == 2, result.held
    for row in rows:
        after = read(tmp_path / "out" / row["output"])
        assert np.array_equal(after.pixel_array, stored)
    assert {read(tmp_path / "out" / r["output"]).file_meta.TransferSyntaxUID for r in rows} == {
        TRANSFER_SYNTAXES["explicit_le"],
        TRANSFER_SYNTAXES["j2k_lossless"],
    }


def test_out_inside_src_with_its_secret_beside_it_and_a_dicomdir(hospital: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(hospital, src)
    (src / "DICOMDIR").write_bytes((next(src.rglob("*.dcm"))).read_bytes())  # a media index: not input
    first = deid(src, src / "shareable", ProfileOptions("vindr"))
    assert first.secret_created and first.secret_path == src / "shareable.deid-secret"
    again = deid(src, src / "shareable", ProfileOptions("vindr"))
    assert (again.total, again.skipped, again.bad_input) == (
        16,
        14,
        [],
    )  # neither OUT nor the secret is input


def test_a_dask_cluster_gives_the_same_bytes(
    hospital: Path, secret: Path, vindr_run: Any, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as lc:
        result = deid(hospital, tmp_path / "dask", ProfileOptions("vindr"), secret_file=secret,
                      cluster=lc.scheduler_address)  # fmt: skip
    assert result.written == 14
    assert outputs(tmp_path / "dask") == outputs(vindr_run[2])


@pytest.mark.slow
def test_a_cli_run_killed_by_sigkill_resumes_to_the_same_output(secret: Path, tmp_path: Path) -> None:
    """A real kill -9 at a random moment of a longer run (bigger images), then a plain re-run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from cxrlab.datasets.phantom import make_hospital

    src = make_hospital(tmp_path / "src", patients=5, seed=1, size=768).root
    reference = tmp_path / "reference"
    deid(src, reference, ProfileOptions("basic"), secret_file=secret)
    out = tmp_path / "out"
    args = [sys.executable, "-m", "cxrlab.cli.main", "deid", str(src), str(out), "--profile", "basic",
            "--secret-file", str(secret)]  # fmt: skip
    env = {**os.environ, "CXRLAB_NO_PROGRESS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(list(out.glob("*.dicom"))) < 3 and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 1 <= len(outputs(out)) < len(outputs(reference)), "the kill should land mid-run"
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert outputs(out) == outputs(reference)
    assert not list(out.glob(".*.tmp"))


def test_every_writable_syntax_keeps_its_pixel_bytes(secret: Path, tmp_path: Path) -> None:
    """Deflated, big endian, RLE, JPEG-LS, JPEG, HTJ2K...: same syntax, same Pixel Data bytes, same pixels."""
    from cxrlab.datasets.phantom import TRANSFER_SYNTAXES, DicomSpec, write_dicom

    stored = (np.arange(80 * 64, dtype=np.uint16).reshape(80, 64) * 7 % 4096).astype(np.uint16)
    for i, (name, uid) in enumerate(TRANSFER_SYNTAXES.items()):
        eight = name == "jpeg_baseline"
        bits = 8 if eight else 12
        spec = DicomSpec(transfer_syntax=uid, bits_stored=bits, bits_allocated=8 if eight else 16,
                         sop_instance_uid=f"1.2.3.{i}")  # fmt: skip
        write_dicom(
            tmp_path / "src" / f"{name}.dcm", (stored // 16).astype(np.uint8) if eight else stored, spec
        )
    result, rows = _run(tmp_path / "src", tmp_path / "out", "basic", secret)
    assert result.written == len(TRANSFER_SYNTAXES) >= 10, result.held
    for row in rows:
        before, after = read(tmp_path / "src" / row["source"]), read(tmp_path / "out" / row["output"])
        assert after.file_meta.TransferSyntaxUID == before.file_meta.TransferSyntaxUID, row["source"]
        assert after.PixelData == before.PixelData, row["source"]
        assert np.array_equal(after.pixel_array, before.pixel_array), row["source"]


def test_vindr_agrees_with_pydicom_deid_on_the_same_whitelist(vindr_run: Any, hospital: Path,
                                                              tmp_path: Path) -> None:  # fmt: skip
    """The field's library (pydicom/deid, ``REMOVE ALL`` + ``KEEP`` per whitelisted keyword, private tags
    removed) keeps exactly the same elements at every depth with the same values, UIDs aside."""
    import warnings

    deid_config = pytest.importorskip("deid.config")
    deid_dicom = pytest.importorskip("deid.dicom")
    from deid.logger import bot

    bot.level = 0  # quiet
    recipe = tmp_path / "whitelist.dicom"
    keywords = [row["keyword"] for row in _table("vindr_whitelist.csv") if row["kind"] != "added"]
    recipe.write_text("FORMAT dicom\n%header\nREMOVE ALL\n" + "".join(f"KEEP {k}\n" for k in keywords))
    _, rows, out = vindr_run
    added = {_tag(row["tag"]) for row in _table("vindr_whitelist.csv") if row["kind"] == "added"}
    for row in rows:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (reference,) = deid_dicom.replace_identifiers(
                [str(hospital / row["source"])], deid=deid_config.DeidRecipe(str(recipe)), remove_private=True
            )
        ours = read(out / row["output"])
        theirs_elements = {int(e.tag): e for e in reference.iterall()}
        ours_elements = {int(e.tag): e for e in ours.iterall() if int(e.tag) not in added}
        assert set(theirs_elements) == set(ours_elements), row["source"]
        for tag, elem in ours_elements.items():
            if elem.VR not in ("UI", "SQ"):
                assert elem.value == theirs_elements[tag].value, f"{row['source']}: {elem.keyword}"
