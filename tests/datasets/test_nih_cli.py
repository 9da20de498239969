"""``cxrlab nih verify | extract | index``: exit codes, JSON, messages."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from test_nih_archives import _make_archive

from conftest import REPO

FIXTURE = REPO / "tests" / "fixtures" / "nih"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cxrlab.cli.main", *args], capture_output=True, text=True, check=False
    )


def test_verify_extract_cli(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    for i in (1, 2):
        _make_archive(raw / f"images_{i:03d}.tar.gz", [f"0000000{i}_000.png", f"0000000{i}_001.png"], seed=i)
    md5 = raw / "images_md5.txt"
    md5.write_text(
        "".join(f"{hashlib.md5(p.read_bytes()).hexdigest()}  {p.name}\n" for p in sorted(raw.glob("*.gz")))
    )
    good = _cli("nih", "verify", str(raw), "--md5-file", str(md5), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["ok"] is True

    # Against the FAQ's MD5s these phantom archives mismatch and ten are missing: exit 1, each named.
    faq = _cli("nih", "verify", str(raw))
    assert faq.returncode == 1
    assert "images_012.tar.gz" in faq.stdout and "MD5 mismatch" in faq.stdout.replace("\n", " ")

    path = raw / "images_002.tar.gz"
    path.write_bytes(path.read_bytes()[:-100])
    cut = _cli("nih", "verify", str(raw), "--md5-file", str(md5), "--json")
    assert cut.returncode == 1
    results = {a["name"]: a for a in json.loads(cut.stdout)["archives"]}
    assert results["images_001.tar.gz"]["ok"] is True
    assert any("gzip stream ends early" in r for r in results["images_002.tar.gz"]["reasons"])

    out = _cli("nih", "extract", str(raw), str(tmp_path / "out"))
    assert out.returncode == 1 and "images_002.tar.gz: extraction stopped" in out.stderr
    assert "Traceback" not in out.stderr
    written = {p.name for p in (tmp_path / "out" / "images").iterdir()}
    assert {"00000001_000.png", "00000001_001.png"} <= written  # the sound archive is complete
    assert not [n for n in written if n.endswith(".part")]


def test_index_cli_on_the_real_excerpt(tmp_path: Path) -> None:
    out = _cli("nih", "index", str(FIXTURE), "--out", str(tmp_path / "t"), "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["images"] == 380 and summary["splits"] == {"train_val": 275, "test": 105}
    assert summary["boxes"] == 23
    assert (tmp_path / "t" / "images.parquet").is_file()
    human = _cli("nih", "index", str(FIXTURE), "--out", str(tmp_path / "t2"), "--strict")
    assert human.returncode == 0, human.stderr  # only notes on the real excerpt, no warning
    assert "Indexed 380 images" in human.stdout
    missing = _cli("nih", "index", str(tmp_path / "nope"), "--out", str(tmp_path / "t3"))
    assert missing.returncode == 1 and "no such folder" in missing.stderr


def test_demo_step_verifies_extracts_indexes_and_prints_statistics(nih_phantom: Path, tmp_path: Path) -> None:
    import io

    from rich.console import Console

    from cxrlab.cli.demo import DemoContext, step_nih
    from cxrlab.tables import load_tables

    text = io.StringIO()
    ctx = DemoContext(work=tmp_path, images=30, seed=0, console=Console(file=text, width=80))
    ctx.paths["nih_raw"] = nih_phantom
    step_nih(ctx)
    out = text.getvalue()
    # Each problem on one line of its own, whole, even on an 80-column console (no stray wrapped tail).
    from cxrlab.datasets.nih import index_nih

    problems = index_nih(nih_phantom, images_dir=ctx.paths["nih_images"]).problems
    assert problems
    for problem in problems:
        assert any(line.endswith(str(problem)) for line in out.splitlines()), str(problem)
    assert out.count(" ok ") == 3  # the three archives
    assert "Positive images per label, per split" in out and "Co-occurrence" in out
    tables = load_tables(ctx.paths["nih_tables"])
    assert len(tables.images) == 30 and tables.images["has_png"].all()
    assert len(list((ctx.paths["nih_images"] / "images").glob("*.png"))) == 30


def test_index_and_stats_cli_on_the_older_revisions_of_the_excerpt(tmp_path: Path) -> None:
    """The 2017 CSV (trailing empty column) and the first release (``057Y``, zero-padded ids), built from
    the real excerpt, give the same counts through the CLI."""
    lines = (FIXTURE / "Data_Entry_2017_v2020.csv").read_text().splitlines()
    first = [lines[0] + ","]
    for line in lines[1:]:
        f = line.split(",")
        f[3], f[4] = f[3].zfill(8), f"{int(f[4]):03d}Y"
        first.append(",".join(f) + ",")
    revisions = {"2017": [line + "," for line in lines], "first-release": first}
    counts = {}
    for name, text in revisions.items():
        folder = tmp_path / name
        folder.mkdir()
        for other in ("BBox_List_2017.csv", "train_val_list.txt", "test_list.txt"):
            (folder / other).write_bytes((FIXTURE / other).read_bytes())
        (folder / "Data_Entry_2017.csv").write_text("\n".join(text) + "\n")
        out = _cli("nih", "index", str(folder), "--out", str(tmp_path / f"t-{name}"), "--json")
        assert out.returncode == 0, out.stderr
        summary = json.loads(out.stdout)
        assert summary["revision"] == name
        stats = _cli("stats", str(tmp_path / f"t-{name}"), "--json")
        assert stats.returncode == 0, stats.stderr
        counts[name] = (summary["labels"], json.loads(stats.stdout)["by"]["age"]["images"])
    assert counts["2017"] == counts["first-release"]
    assert sum(counts["2017"][1].values()) == 380 and "unknown" not in counts["2017"][1]
