"""Views of the two tables in the formats detection tools and the VinDr-CXR releases use.

Boxes in the tables are ``x_min, y_min, x_max, y_max`` in pixels of the original image, origin top-left. With
``converted`` (a folder of converted images and its manifest, :mod:`cxrlab.imaging.manifest`: ``image_id,
width, height, scale_x, scale_y, output``) boxes become ``x * scale_x``, ``y * scale_y`` clipped to the new
size, and the file names and sizes are the converted ones.

The export is built in a temporary folder beside ``out`` and put in place only when whole (see
:func:`cxrlab.atomic.output_folder`): an earlier cxrlab output in ``out`` is replaced whole (no label file
of an earlier class map survives), a non-empty folder that is not a cxrlab output is refused unless
``force``, and inputs are never written over.

Formats:

- ``coco``: ``annotations.json`` (``images`` with width/height, ``annotations`` with ``bbox`` x, y, w, h,
  ``area``, ``iscrowd`` 0 and the ``reader``/``score``/``n_readers`` of the row, ``categories``). Category ids
  are the class index + 1 (COCO starts at 1; torchvision's detection models keep 0 for the background).
- ``yolo``: ``labels/<split>/<image_id>.txt`` with ``class x_center y_center width height`` normalised to [0,
  1] (an image without boxes has an empty file: a negative example), ``images/<split>/`` with links to the
  converted images when given, and ``data.yaml`` (``path``, ``train``, ``val``, ``names``). Needs image sizes.
- ``voc``: ``Annotations/<image_id>.xml`` (integer pixel corners, as VOC writes them) and
  ``ImageSets/Main/<split>.txt``.
- ``vindr-csv``: the PhysioNet release's ``annotations/annotations_{train,test}.csv`` (local labels and ``No
  finding``) and ``image_labels_{train,test}.csv`` (every label, 0/1); the test split's reader is the
  ``consensus``; a ``consensus`` of training images is written with rad_id ``consensus``
  (the release files have no score column: scores read back as 1.0).
- ``challenge-csv``: the challenge's ``train.csv`` with ``class_id``; labels outside its 14 classes are left
  out and counted, and a reader left with nothing on an image gets ``No finding`` (14), as in the challenge.

Class maps are written beside (``classes.json``, and ``classes.txt`` one name a line in id order). The class
list is the challenge's 14 when every exported box label is one of them, else VinDr's 22 local labels (else
the labels as found, sorted). Only rows with boxes go to coco/yolo/voc; by default the ``consensus`` reader
when the table has one, else every reader.
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cxrlab.atomic import output_folder, write_text_atomic
from cxrlab.errors import CxrlabError, ParameterError
from cxrlab.imaging import manifest as imaging_manifest
from cxrlab.imaging.transform import scale_findings
from cxrlab.labels.consensus import CONSENSUS
from cxrlab.params import check_choice
from cxrlab.tables import BOX_COLUMNS, has_box, select_readers
from cxrlab.taxonomy import NO_FINDING, VINDR_CHALLENGE, VINDR_GLOBAL, VINDR_LOCAL

FORMATS = ("coco", "yolo", "voc", "vindr-csv", "challenge-csv")
MANIFEST_COLUMNS = ["image_id", "width", "height", "scale_x", "scale_y", "output"]
CHALLENGE_CLASSES = VINDR_CHALLENGE.findings


@dataclass
class ExportResult:
    out: Path
    files: list[Path] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ helpers


def _write_csv(path: Path, df: pd.DataFrame) -> Path:
    return write_text_atomic(path, df.to_csv(index=False, lineterminator="\n"))


def read_manifest(converted: str | Path) -> pd.DataFrame:
    """The converted folder's manifest (:func:`cxrlab.imaging.manifest.read_manifest`, rows with an output):
    per image the new size, the scale, the output file (relative to the folder)."""
    converted = Path(converted)
    df = imaging_manifest.read_manifest(converted, ok_only=True)
    df = (
        df[MANIFEST_COLUMNS].astype({"image_id": str, "output": str}).drop_duplicates("image_id", keep="last")
    )
    df["output"] = [_relative_to(o, converted) for o in df["output"]]
    return df.reset_index(drop=True)


def _relative_to(output: str, folder: Path) -> str:
    """An output path relative to the converted folder where it lies inside it (COCO/VOC file names)."""
    path = Path(output)
    if path.is_absolute():
        for base in (folder.resolve(), folder.absolute()):
            try:
                return str(path.relative_to(base))
            except ValueError:
                continue
    return output


def class_list(labels: Sequence[str]) -> tuple[str, list[str]]:
    """(name, classes) for the exported box labels: the challenge's 14, VinDr's 22 local, or as found."""
    found = set(labels)
    if found <= set(CHALLENGE_CLASSES):
        return "vindr-challenge", list(CHALLENGE_CLASSES)
    if found <= set(VINDR_LOCAL):
        return "vindr-local", list(VINDR_LOCAL)
    return "found", sorted(found)


@dataclass
class _Prepared:
    images: pd.DataFrame  # image_id, split, file_name, width, height (float, NaN unknown)
    boxes: pd.DataFrame  # image_id, label, class, boxes, reader, score, n_readers?
    classes: list[str]
    class_set: str
    notes: list[str]


def _prepare(
    images: pd.DataFrame, findings: pd.DataFrame, readers: Sequence[str] | None, converted: str | Path | None
) -> _Prepared:
    notes: list[str] = []
    f, _ = select_readers(findings, list(readers or []), parameter="readers")
    boxed = f[has_box(f)].copy()
    class_set, classes = class_list(sorted(boxed["label"].unique()))
    img = images[["image_id", "split", "path", "width", "height"]].copy()
    img["width"] = img["width"].astype(float)
    img["height"] = img["height"].astype(float)
    img["file_name"] = img["path"].astype(str)
    if converted is not None:
        img, boxed = _in_converted(img, boxed, converted, notes)
    boxed = boxed[boxed["image_id"].isin(img["image_id"])]
    boxed["class_index"] = boxed["label"].map({c: i for i, c in enumerate(classes)})
    unmapped = boxed["class_index"].isna()
    if unmapped.any():
        notes.append(f"{int(unmapped.sum())} box(es) with labels outside the class list were left out")
        boxed = boxed[~unmapped]
    boxed["class_index"] = boxed["class_index"].astype(int)
    return _Prepared(img.reset_index(drop=True), boxed.reset_index(drop=True), classes, class_set, notes)


def _in_converted(
    img: pd.DataFrame, boxed: pd.DataFrame, converted: str | Path, notes: list[str]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Images and boxes as converted: file names, sizes and box coordinates of the manifest's images."""
    manifest = read_manifest(converted)
    m = img[["image_id"]].merge(manifest, on="image_id", how="left")
    absent = m["output"].isna()
    if len(m) and absent.all():
        raise CxrlabError(
            f"{converted}: none of the {len(m)} images is in its conversion manifest "
            f"(e.g. {m['image_id'].iloc[0]}); convert these images first, or give their converted folder"
        )
    if absent.any():
        notes.append(
            f"{int(absent.sum())} image(s) not in the conversion manifest were left out "
            f"(e.g. {m.loc[absent, 'image_id'].iloc[0]})"
        )
    keep = ~absent.to_numpy()
    img, m = img[keep].reset_index(drop=True), m[keep].reset_index(drop=True)
    img["width"], img["height"] = m["width"].astype(float), m["height"].astype(float)
    img["file_name"] = m["output"]
    return img, _scale_and_clip(boxed, m)


def _scale_and_clip(boxed: pd.DataFrame, manifest: pd.DataFrame) -> pd.DataFrame:
    """Boxes in the converted images' pixels, clipped to their size; rows of images not converted dropped."""
    scaled = scale_findings(boxed, manifest)
    size = manifest.set_index("image_id")[["width", "height"]].reindex(scaled["image_id"])
    limit = np.tile(size.to_numpy(dtype=float), 2)  # w, h, w, h
    scaled[BOX_COLUMNS] = np.clip(scaled[BOX_COLUMNS].to_numpy(dtype=float), 0, limit)
    return scaled


def _write_class_maps(out: Path, classes: list[str], class_set: str, id_offset: int) -> list[Path]:
    payload = {
        "class_set": class_set,
        "id_offset": id_offset,
        "classes": [
            {
                "id": i + id_offset,
                "index": i,
                "name": c,
                "challenge_class_id": VINDR_CHALLENGE.class_ids.get(c),
            }
            for i, c in enumerate(classes)
        ],
    }
    return [
        write_text_atomic(out / "classes.json", json.dumps(payload, indent=2) + "\n"),
        write_text_atomic(out / "classes.txt", "".join(f"{c}\n" for c in classes)),
    ]


# ------------------------------------------------------------------------------------------------ formats


def to_coco(p: _Prepared) -> dict[str, Any]:
    """A COCO detection dict (bbox x, y, w, h in pixels; category ids = class index + 1)."""
    ids = {iid: k + 1 for k, iid in enumerate(p.images["image_id"])}
    coco_images = [
        {
            "id": ids[r.image_id],
            "file_name": r.file_name,
            "width": _int_or_none(r.width),
            "height": _int_or_none(r.height),
            "image_id": r.image_id,
            "split": r.split if isinstance(r.split, str) else None,
        }
        for r in p.images.itertuples()
    ]
    b = p.boxes
    xy = b[BOX_COLUMNS].to_numpy(dtype=float)
    w, h = xy[:, 2] - xy[:, 0], xy[:, 3] - xy[:, 1]
    has_n = "n_readers" in b.columns
    anns = []
    for k, r in enumerate(b.itertuples()):
        ann = {
            "id": k + 1,
            "image_id": ids[r.image_id],
            "category_id": int(r.class_index) + 1,
            "bbox": [float(xy[k, 0]), float(xy[k, 1]), float(w[k]), float(h[k])],
            "area": float(w[k] * h[k]),
            "iscrowd": 0,
            "reader": r.reader,
            "score": float(r.score),
        }
        if has_n and not pd.isna(r.n_readers):
            ann["n_readers"] = int(r.n_readers)
        anns.append(ann)
    categories = [{"id": i + 1, "name": c, "supercategory": "finding"} for i, c in enumerate(p.classes)]
    return {
        "info": {"description": "cxrlab export", "coordinates": "bbox is x, y, width, height in pixels"},
        "images": coco_images,
        "annotations": anns,
        "categories": categories,
    }


def _int_or_none(v: float) -> int | None:
    return None if v is None or np.isnan(v) else int(v)


def _export_coco(p: _Prepared, out: Path, result: ExportResult) -> None:
    if p.images["width"].isna().any():
        result.notes.append("image sizes unknown for some images: their COCO width/height are null")
    result.files.append(write_text_atomic(out / "annotations.json", json.dumps(to_coco(p)) + "\n"))
    result.files += _write_class_maps(out, p.classes, p.class_set, 1)


def _export_yolo(
    p: _Prepared, out: Path, result: ExportResult, converted: Path | None, *, final: Path
) -> None:
    unknown = p.images["width"].isna() | p.images["height"].isna()
    if unknown.any():
        raise ParameterError(
            "converted",
            f"is needed: YOLO normalises boxes by the image size and {int(unknown.sum())} image(s) have none "
            f"(e.g. {p.images.loc[unknown, 'image_id'].iloc[0]}); give the converted images, or index with "
            "the DICOMs",
            exit_code=1,
        )
    size = p.images.set_index("image_id")[["width", "height"]]
    b = p.boxes
    wh = size.reindex(b["image_id"]).to_numpy(dtype=float)
    xy = b[BOX_COLUMNS].to_numpy(dtype=float)
    xc = (xy[:, 0] + xy[:, 2]) / 2 / wh[:, 0]
    yc = (xy[:, 1] + xy[:, 3]) / 2 / wh[:, 1]
    bw = (xy[:, 2] - xy[:, 0]) / wh[:, 0]
    bh = (xy[:, 3] - xy[:, 1]) / wh[:, 1]
    lines: dict[str, list[str]] = {}
    for k, (iid, cls) in enumerate(zip(b["image_id"], b["class_index"], strict=True)):
        lines.setdefault(iid, []).append(f"{cls} {xc[k]:.6f} {yc[k]:.6f} {bw[k]:.6f} {bh[k]:.6f}\n")
    splits = []
    for r in p.images.itertuples():
        split = r.split if isinstance(r.split, str) else "train"
        if split not in splits:
            splits.append(split)
        write_text_atomic(out / "labels" / split / f"{r.image_id}.txt", "".join(lines.get(r.image_id, [])))
        if converted is not None:
            src = (converted / r.file_name).resolve()
            link = out / "images" / split / f"{r.image_id}{src.suffix}"
            link.parent.mkdir(parents=True, exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(os.path.relpath(src, link.parent))
        else:
            (out / "images" / split).mkdir(parents=True, exist_ok=True)
    if converted is None:
        result.notes.append(
            "no converted images given: images/ is empty; put the converted images there under the same "
            "names as labels/"
        )
    train, val = _yolo_train_val(splits, result)
    yaml = [f"path: {final.resolve()}", f"train: images/{train}", f"val: images/{val}"]
    if "test" in splits:
        yaml.append("test: images/test")
    yaml.append(f"nc: {len(p.classes)}")
    yaml.append("names:")
    yaml += [f"  {i}: {json.dumps(c)}" for i, c in enumerate(p.classes)]
    result.files.append(write_text_atomic(out / "data.yaml", "\n".join(yaml) + "\n"))
    result.files += _write_class_maps(out, p.classes, p.class_set, 0)
    result.counts["label_files"] = len(p.images)


def _yolo_train_val(splits: list[str], result: ExportResult) -> tuple[str, str]:
    """The splits data.yaml names for training and validation: ``val`` when there is one, never silently
    the test split (tuning on it would leak the test set into the model)."""
    train = "train" if "train" in splits else (splits[0] if splits else "train")
    if "val" in splits:
        return train, "val"
    fallback = "test" if "test" in splits else train
    result.notes.append(f"no val split: data.yaml's val is the {fallback} split (make one with splits make)")
    return train, fallback


def _export_voc(p: _Prepared, out: Path, result: ExportResult) -> None:
    groups = {iid: g for iid, g in p.boxes.groupby("image_id", sort=False)}
    ids_by_split: dict[str, list[str]] = {}
    for r in p.images.itertuples():
        root = ET.Element("annotation")
        ET.SubElement(root, "folder").text = str(Path(r.file_name).parent)
        ET.SubElement(root, "filename").text = Path(r.file_name).name
        size = ET.SubElement(root, "size")
        ET.SubElement(size, "width").text = str(_int_or_none(r.width) or 0)
        ET.SubElement(size, "height").text = str(_int_or_none(r.height) or 0)
        ET.SubElement(size, "depth").text = "1"
        ET.SubElement(root, "segmented").text = "0"
        g = groups.get(r.image_id)
        if g is not None:
            for row in g.itertuples():
                obj = ET.SubElement(root, "object")
                ET.SubElement(obj, "name").text = row.label
                ET.SubElement(obj, "pose").text = "Unspecified"
                ET.SubElement(obj, "truncated").text = "0"
                ET.SubElement(obj, "difficult").text = "0"
                box = ET.SubElement(obj, "bndbox")
                for tag, col in (("xmin", "x_min"), ("ymin", "y_min"), ("xmax", "x_max"), ("ymax", "y_max")):
                    ET.SubElement(box, tag).text = str(round(getattr(row, col)))
        ET.indent(root)
        write_text_atomic(
            out / "Annotations" / f"{r.image_id}.xml", ET.tostring(root, encoding="unicode") + "\n"
        )
        ids_by_split.setdefault(r.split if isinstance(r.split, str) else "train", []).append(r.image_id)
    for split, ids in ids_by_split.items():
        result.files.append(
            write_text_atomic(out / "ImageSets" / "Main" / f"{split}.txt", "".join(f"{i}\n" for i in ids))
        )
    if p.images["width"].isna().any():
        result.notes.append("image sizes unknown for some images: their VOC <size> is 0")
    result.files += _write_class_maps(out, p.classes, p.class_set, 0)
    result.counts["xml_files"] = len(p.images)


def _split_of(images: pd.DataFrame, findings: pd.DataFrame) -> pd.Series:
    """Each finding row's image split; "" where the image has none (exported as a training image)."""
    split = findings["image_id"].map(images.set_index("image_id")["split"])
    return split.astype("string").fillna("")


def _coord_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df[BOX_COLUMNS].astype(float)


def _export_vindr_csv(images: pd.DataFrame, findings: pd.DataFrame, out: Path, result: ExportResult) -> None:
    split = _split_of(images, findings)
    ann = out / "annotations"
    label_columns = list(VINDR_LOCAL) + list(VINDR_GLOBAL)
    extra = sorted(set(findings["label"]) - set(label_columns))
    if extra:
        result.notes.append(f"labels outside VinDr's 28 written as extra columns: {', '.join(extra)}")
    in_box_file = findings["label"].isin([*VINDR_LOCAL, NO_FINDING, *extra]) | has_box(findings)
    is_cons = findings["reader"] == CONSENSUS
    test = (split == "test").to_numpy()
    skipped = test & ~is_cons.to_numpy()
    if skipped.any():
        result.notes.append(f"{int(skipped.sum())} test row(s) of readers other than consensus left out")
    train_rows = findings[~test]
    test_rows = findings[test & is_cons.to_numpy()]
    for name, rows, has_reader in (("train", train_rows, True), ("test", test_rows, False)):
        if rows.empty:
            continue
        box = rows[in_box_file.loc[rows.index]]
        table = pd.DataFrame({"image_id": box["image_id"]})
        if has_reader:
            table["rad_id"] = box["reader"]
        table["class_name"] = box["label"]
        table = pd.concat([table, _coord_frame(box)], axis=1)
        result.files.append(_write_csv(ann / f"annotations_{name}.csv", table))
        result.counts[f"annotations_{name}_rows"] = len(table)
        key = ["image_id", "reader"] if has_reader else ["image_id"]
        ticks = rows[[*key, "label"]].drop_duplicates().assign(v=1)
        wide = ticks.pivot_table(index=key, columns="label", values="v", aggfunc="max", fill_value=0)
        columns = label_columns + extra
        wide = wide.reindex(columns=columns, fill_value=0).astype(int).reset_index()
        if has_reader:
            wide = wide.rename(columns={"reader": "rad_id"})
        else:
            wide = wide.rename(columns={"Other diseases": "Other disease"})  # the test file's spelling
        result.files.append(_write_csv(ann / f"image_labels_{name}.csv", wide))
        result.counts[f"image_labels_{name}_rows"] = len(wide)


def _export_challenge_csv(
    images: pd.DataFrame, findings: pd.DataFrame, out: Path, result: ExportResult
) -> None:
    split = _split_of(images, findings)
    rows = findings[(split != "test").to_numpy()]
    left_test = int((split == "test").sum())
    if left_test:
        result.notes.append(
            f"{left_test} test-split row(s) left out (the challenge's train.csv has no test labels)"
        )
    keep = rows["label"].isin(VINDR_CHALLENGE.labels)
    if (~keep).any():
        result.notes.append(
            f"{int((~keep).sum())} row(s) with labels outside the challenge's 15 left out "
            f"({', '.join(sorted(rows.loc[~keep, 'label'].unique())[:6])})"
        )
    pairs = rows[["image_id", "reader"]].drop_duplicates()
    kept = rows[keep]
    empty = pairs.merge(kept[["image_id", "reader"]].drop_duplicates(), how="left", indicator=True)
    empty = empty[empty["_merge"] == "left_only"][["image_id", "reader"]]
    if len(empty):
        result.notes.append(
            f"{len(empty)} reader/image pair(s) left without a challenge label got 'No finding'"
        )
    nf = empty.assign(label=NO_FINDING, **{c: np.nan for c in BOX_COLUMNS})
    kept = pd.concat([kept[["image_id", "reader", "label", *BOX_COLUMNS]], nf], ignore_index=True)
    kept = kept.sort_values(["image_id", "reader", "label"], kind="stable")
    table = pd.DataFrame(
        {
            "image_id": kept["image_id"],
            "class_name": kept["label"],
            "class_id": kept["label"].map(VINDR_CHALLENGE.class_ids).astype(int),
            "rad_id": kept["reader"],
        }
    )
    table = pd.concat([table, _coord_frame(kept)], axis=1)
    result.files.append(_write_csv(out / "train.csv", table))
    result.counts["train_rows"] = len(table)
    payload = {
        "class_set": "vindr-challenge",
        "classes": [{"id": i, "name": c} for c, i in VINDR_CHALLENGE.class_ids.items()],
    }
    result.files.append(write_text_atomic(out / "classes.json", json.dumps(payload, indent=2) + "\n"))


def export(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    fmt: str,
    out: str | Path,
    *,
    converted: str | Path | None = None,
    readers: Sequence[str] | None = None,
    force: bool = False,
    inputs: Sequence[str | Path] = (),
) -> ExportResult:
    """Write ``fmt`` into the folder ``out`` (module docstring), whole or not at all.

    ``inputs`` names the files the tables came from (never written over, nor a folder holding them
    replaced); ``force`` allows writing into a non-empty folder that is not a cxrlab output, replacing only
    the files the export writes.
    """
    check_choice(fmt, FORMATS, "fmt")
    if converted is not None and fmt in ("vindr-csv", "challenge-csv"):
        raise ParameterError("converted", f"applies to coco, yolo and voc; {fmt} keeps the original pixels")
    out = Path(out)
    settings: dict[str, object] = {
        "command": "export",
        "format": fmt,
        "readers": list(readers or []),
        "converted": converted,
    }
    with output_folder(out, settings, inputs=[*inputs, converted], force=force) as folder:
        result = ExportResult(out)
        _write_format(images, findings, fmt, folder.work, result, converted, readers, final=out)
        result.files = [folder.final_path(f) for f in result.files]
        if not folder.whole:
            result.notes.append(f"{out} was not a cxrlab output: its other files were left as they were")
    return result


def _write_format(
    images: pd.DataFrame,
    findings: pd.DataFrame,
    fmt: str,
    work: Path,
    result: ExportResult,
    converted: str | Path | None,
    readers: Sequence[str] | None,
    *,
    final: Path,
) -> None:
    if fmt in ("vindr-csv", "challenge-csv"):
        f = findings if not readers else select_readers(findings, list(readers), parameter="readers")[0]
        f = f.drop(columns=[c for c in f.columns if c == "n_readers"])
        (_export_vindr_csv if fmt == "vindr-csv" else _export_challenge_csv)(images, f, work, result)
        return
    p = _prepare(images, findings, readers, converted)
    result.notes += p.notes
    result.counts.update(images=len(p.images), boxes=len(p.boxes), classes=len(p.classes))
    if fmt == "coco":
        _export_coco(p, work, result)
    elif fmt == "yolo":
        _export_yolo(p, work, result, Path(converted) if converted is not None else None, final=final)
    else:
        _export_voc(p, work, result)
