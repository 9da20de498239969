"""Reading reports in odd encodings, empty, huge or non-English, from folders and CSVs."""

from __future__ import annotations

import codecs
from pathlib import Path

import pytest

from cxrlab.errors import CxrlabError
from cxrlab.reports import ReportLabeler, decode_bytes, read_reports

TEXT = "Pleural effusion – naïve café. No pneumothorax."


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF8 + TEXT.encode("utf-8"), "utf-8"),
        (codecs.BOM_UTF16_LE + TEXT.encode("utf-16-le"), "utf-16-le"),
        (codecs.BOM_UTF16_BE + TEXT.encode("utf-16-be"), "utf-16-be"),
        (TEXT.encode("utf-16-le"), "utf-16-le"),  # no BOM: found by its NUL bytes
        (TEXT.encode("cp1252"), "cp1252"),
        (codecs.BOM_UTF32_LE + TEXT.encode("utf-32-le"), "utf-32-le"),
    ],
    ids=["utf8", "utf8-bom", "utf16le-bom", "utf16be-bom", "utf16le-nobom", "cp1252", "utf32le-bom"],
)
def test_decode_bytes(data: bytes, encoding: str) -> None:
    text, used = decode_bytes(data)
    assert text == TEXT
    assert used == encoding


def test_latin1_fallback_accepts_any_byte() -> None:
    data = b"Effusion " + bytes([0x81, 0x8D, 0xE9])  # undefined in cp1252, invalid UTF-8
    text, used = decode_bytes(data)
    assert used == "latin-1"
    assert text.startswith("Effusion ")


def test_folder_of_text_files_in_odd_encodings(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_bytes(codecs.BOM_UTF16_LE + "No effusion. Cardiomegaly.".encode("utf-16-le"))
    (tmp_path / "b.txt").write_bytes("Naïve pneumothorax.".encode("cp1252"))
    (tmp_path / "c.txt").write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.TXT").write_bytes(
        "Ph\u1ed5i kh\u00f4ng c\u00f3 t\u1ed5n th\u01b0\u01a1ng.".encode()
    )
    (tmp_path / "notes.md").write_text("not a report")
    reports = read_reports(tmp_path)
    assert list(reports["report_id"]) == ["a", "b", "c", "sub/d"]
    table = ReportLabeler("nih").label_reports(reports["text"], reports["report_id"])
    row = table.set_index("report_id")
    assert row.loc["a", "Cardiomegaly"] == 1 and row.loc["a", "Effusion"] == 0
    assert row.loc["b", "Pneumothorax"] == 1
    assert row.loc["c"].isna().all()  # empty: nothing at all, not even "No finding"
    # Vietnamese only: no English phrase found, no crash; a report with no finding named is "No finding"
    assert row.loc["sub/d"].drop("No finding").isna().all() and row.loc["sub/d", "No finding"] == 1


def test_vietnamese_and_mixed_text() -> None:
    labeler = ReportLabeler("vindr")
    mixed = "Bóng tim to. Tràn dịch màng phổi phải. English: small right pleural effusion, no pneumothorax."
    values = labeler.label(mixed)
    assert values["Pleural effusion"] == 1 and values["Pneumothorax"] == 0
    # Turkish dotted capital I lower-cases to two code points: offsets must still hold
    assert labeler.label("İİİ cardiomegaly İ. No effusion.")["Cardiomegaly"] == 1


def test_very_long_report_is_fast_enough_and_correct() -> None:
    filler = "The lungs are clear and the mediastinum is normal " * 20000  # ~1 MB, no full stop
    text = filler + ". Large right pneumothorax. " + "no " * 5000
    assert len(text) > 1_000_000
    values = ReportLabeler("nih").label(text)
    assert values["Pneumothorax"] == 1


def test_odd_inputs_do_not_crash() -> None:
    labeler = ReportLabeler("chexpert")
    for text in (
        None,
        float("nan"),
        42,
        "\x00\x00",
        ":::",
        "...",
        "?" * 1000,
        "no " * 1000,
        "\r\nno\reffusion",
    ):
        labeler.label(text)  # type: ignore[arg-type]
    assert labeler.label("\r\nno\reffusion")["Pleural Effusion"] == 0


def test_csv_with_findings_and_impression(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("uid,indication,findings,impression\n7,pneumonia?,No effusion.,Mild cardiomegaly.\n")
    reports = read_reports(path)
    assert list(reports["report_id"]) == ["7"]
    assert reports["text"][0] == "FINDINGS: No effusion.\nIMPRESSION: Mild cardiomegaly."


def test_headerless_one_column_csv(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text('Heart size normal and lungs are clear. No effusion\n"Mild cardiomegaly."\n')
    reports = read_reports(path)
    assert len(reports) == 2 and reports["text"][1] == "Mild cardiomegaly."


def test_csv_column_choice_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"id,note,other\na,Small effusion.,x\n")
    assert read_reports(path)["text"][0] == "Small effusion."
    assert read_reports(path, text_columns=["other"])["text"][0] == "x"
    with pytest.raises(CxrlabError, match=r"^text_columns names no column of .*: 'nope'"):
        read_reports(path, text_columns=["nope"])
    odd = tmp_path / "odd.csv"
    odd.write_text("a,b\n1,2\n")
    with pytest.raises(CxrlabError, match=r"^text_columns is needed: which column of .* holds the report"):
        read_reports(odd)
    with pytest.raises(CxrlabError, match="no such file"):
        read_reports(tmp_path / "missing.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CxrlabError, match=r"no \.txt files"):
        read_reports(tmp_path / "empty")
