"""``kanseg data verify`` / ``prepare``: check a user's copy against its manifest; cache resized arrays."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from kanseg.atomic import remove_stale_temps
from kanseg.data.adapters import ADAPTERS
from kanseg.data.build import is_dataset_json_manifest, open_source, prepared_dir, preprocessing_of
from kanseg.data.cases import Case
from kanseg.data.dataset import SegmentationDataset
from kanseg.data.dataset_json import dataset_labels
from kanseg.data.io import is_nifti, label_values_2d, read_image, read_mask, scan_nifti
from kanseg.data.manifests import load_manifest
from kanseg.errors import KansegError

# Problem kinds, in report order; all but "extra" make a copy unusable.
KINDS = ("missing", "extra", "corrupt", "no-mask", "size-mismatch", "labels", "checksum")


@dataclass
class VerifyReport:
    """Outcome of :func:`verify`: one ``(kind, message)`` per problem, plus notes and a verdict."""

    title: str
    root: Path
    expected: int | None
    found: int
    checksums: bool
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    optional_missing: int = 0  # missing cases of an optional group (BUSI normal): not blocking

    def count(self, kind: str) -> int:
        return sum(1 for k, _ in self.problems if k == kind)

    @property
    def usable(self) -> bool:
        blocking = [k for k, _ in self.problems if k != "extra"]
        return self.found > 0 and len(blocking) <= self.optional_missing

    def lines(self) -> list[str]:
        counts = ", ".join(f"{self.count(k)} {k}" for k in KINDS
                           if k != "checksum" and (k != "labels" or self.count(k)))
        checksum = f"{self.count('checksum')} checksum mismatches" if self.checksums else "checksums not checked"
        expected = f"/{self.expected}" if self.expected is not None else ""
        verdict = "usable" if self.usable else "NOT usable"
        summary = f"{self.title}: {self.found}{expected} cases under {self.root}; {counts}, {checksum} -> {verdict}"
        return [f"{k}: {m}" for k, m in self.problems] + [f"note: {n}" for n in self.notes] + [summary]


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _decode_image(path: Path) -> tuple[int, ...]:
    """Spatial shape of an image after decoding all of it, as training will (NIfTI: streamed in chunks)."""
    return scan_nifti(path)[0][:3] if is_nifti(path) else read_image(path).shape[:2]


def _decode_label(path: Path, threshold: float, with_values: bool) -> tuple[tuple[int, ...], set | None]:
    """Spatial shape of a label file after decoding all of it, and its distinct values if asked."""
    if is_nifti(path):
        shape, values = scan_nifti(path, values=with_values)
        return shape[:3], values
    shape = read_mask(path, threshold).shape
    return shape, label_values_2d(path) if with_values else None


def _label_problem(path: Path, values: set | None, labels: dict[int, str]) -> str | None:
    """Why the values stored in ``path`` do not fit the ``labels`` map of dataset.json (None: they do)."""
    defined = ", ".join(map(str, sorted(labels)))
    if values is None:
        return f"{path} holds more than 1024 distinct values; 'labels' in dataset.json defines {defined}"
    stored = sorted(int(v) if float(v).is_integer() else v for v in values)
    extra = [v for v in stored if v not in labels]
    # A binary map with 0/255 (or 0/v) masks is fine: training reads a binary label as "value > 0".
    binary_scaled = len(labels) == 2 and len([v for v in stored if v != 0]) <= 1 and min(stored, default=0) >= 0
    if not extra or binary_scaled:
        return None
    return (f"{path} holds value(s) {', '.join(map(str, extra[:8]))} that 'labels' in dataset.json does not "
            f"define (it defines {defined})")


def check_case(case: Case, expected_shape: tuple[int, ...] | None, threshold: float,
               labels: dict[int, str] | None = None) -> list[tuple[str, str]]:
    """Problems of one case: missing or undecodable files, missing mask, image/mask/manifest size
    disagreement and, given the ``labels`` map of a dataset.json, label values it does not define.

    Every file is decoded completely, one at a time (NIfTI data streamed in chunks: bounded memory).
    """
    problems = []
    shape = None
    for path in case.image:
        if not path.is_file():
            problems.append(("missing", f"{path} (image of case {case.id!r})"))
            continue
        try:
            channel_shape = _decode_image(path)
        except KansegError as err:
            problems.append(("corrupt", str(err)))
            continue
        if shape is None:
            shape = tuple(channel_shape)
        elif tuple(channel_shape) != shape:
            problems.append(("size-mismatch", f"{path} is {_size(channel_shape)}, the case's first image is "
                                              f"{_size(shape)}"))
    size = _size(shape) if shape else None
    if shape and expected_shape and tuple(shape) != tuple(expected_shape):
        problems.append(("size-mismatch", f"{case.image[0]} is {size}, the release has {_size(expected_shape)}"))
    absent = [p for p in case.label if not p.is_file()]
    if not case.label or absent:
        expected = absent[0].name if absent else "a mask"
        return problems + [("no-mask", f"{case.image[0]} has no mask (expected {expected})")]
    for mask in case.label:
        try:
            mask_shape, values = _decode_label(mask, threshold, labels is not None)
        except KansegError as err:
            problems.append(("corrupt", str(err)))
            continue
        if shape and tuple(mask_shape) != tuple(shape):
            problems.append(("size-mismatch", f"{mask} is {_size(mask_shape)}, its image is {size}"))
        problem = _label_problem(mask, values, labels) if labels is not None else None
        if problem:
            problems.append(("labels", problem))
    return problems


def _size(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, tuple(shape)[::-1]))


def _manifest_files(entry: dict, suffix: str) -> dict[str, str | None]:
    """Release files of a manifest case in the variant (extension) of the user's copy."""
    return {p: s for p, s in entry["files"].items() if Path(p).suffix.lower() == suffix.lower()}


def verify(name_or_path: str, data_root: str | os.PathLike | None = None, *, checksums: bool = False,
           progress: Callable[[Iterable, int], Iterable] = lambda it, total: it) -> VerifyReport:
    """Check a dataset copy: counts, missing / extra / corrupt / size-mismatched files, sha256."""
    name = str(name_or_path)
    source = open_source(name, data_root, include_normal=True)
    cases = list(source.cases.values())
    adapter = ADAPTERS.get(name)
    manifest = load_manifest(name) if adapter or is_dataset_json_manifest(name) else None
    report = VerifyReport(manifest["title"] if manifest else source.name, source.root,
                          manifest["counts"]["cases"] if manifest else None, len(cases), checksums)
    entries = {c["id"]: c for c in manifest["cases"]} if manifest else {}
    labels = None if adapter else dataset_labels(name, source.root)
    known = [c for c in cases if c.id in entries][:5]
    official = any((source.root / p).is_file() for c in known for p in entries[c.id]["files"])

    for entry_id, entry in entries.items():
        if entry_id not in source.cases:
            first = next(iter(entry["files"]))
            report.problems.append(("missing", f"case {entry_id!r} ({first})"))
            report.optional_missing += bool(adapter) and entry.get("group") in adapter.optional_groups
    if report.optional_missing:
        report.notes.append(f"{report.optional_missing} missing cases are of an optional group "
                            f"({', '.join(adapter.optional_groups)}), needed only with --include-normal")
    if manifest and not official:
        report.notes.append("not the official file layout: file names and checksums are known only for it")

    def check(case: Case) -> list[tuple[str, str]]:
        entry = entries.get(case.id)
        if manifest and entry is None:
            return [("extra", f"case {case.id!r} ({case.image[0]}) is not in the {name} release")]
        shape = (entry["height"], entry["width"]) if entry and entry.get("height") else None
        shape = tuple(entry["shape"]) if entry and entry.get("shape") else shape  # 3D manifests
        problems = check_case(case, shape if official else None, source.mask_threshold, labels)
        if official and entry:
            found = {p.relative_to(source.root).as_posix(): p.is_file() for p in (*case.image, *case.label)}
            for rel, digest in _manifest_files(entry, case.image[0].suffix).items():
                if rel not in found:  # e.g. an extra BUSI mask (_mask_1.png) of the release is absent
                    problems.append(("missing", f"{source.root / rel}"))
                elif found[rel] and checksums and digest and sha256(source.root / rel) != digest:
                    problems.append(("checksum", f"{source.root / rel} differs from the release (sha256)"))
        return problems

    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for problems in progress(pool.map(check, cases), len(cases)):
            report.problems.extend(problems)
    if official:
        report.problems.extend(("extra", str(p)) for p in _stray_files(source.root, cases, manifest))
    order = {k: i for i, k in enumerate(KINDS)}
    report.problems.sort(key=lambda p: order[p[0]])
    return report


def _stray_files(root: Path, cases: list[Case], manifest: dict) -> list[Path]:
    """Files in the dataset's folders that belong to no case and are not documented extras."""
    known = {p for c in cases for p in (*c.image, *c.label)}
    allowed = set(manifest.get("extra_files", []))
    folders = {p.parent for p in known}
    return sorted(p for folder in folders for p in folder.iterdir()
                  if p.is_file() and p not in known and p.name not in allowed and not p.name.startswith("."))


def prepare(name_or_path: str, data_root: str | os.PathLike | None = None, *, image_size=None,
            progress: Callable[[Iterable, int], Iterable] = lambda it, total: it) -> tuple[Path, int]:
    """Cache every case's resized arrays where ``build_dataset`` looks for them; (folder, count)."""
    source = open_source(str(name_or_path), data_root, include_normal=True)
    if source.spatial_dims != 2:
        raise KansegError("kanseg data prepare caches 2D datasets only (3D volumes are read directly)")
    preprocessing = preprocessing_of(source, image_size)
    folder = prepared_dir(source, preprocessing)
    remove_stale_temps(folder)  # arrays of an earlier prepare killed while writing them
    dataset = SegmentationDataset(list(source.cases.values()), preprocessing,
                                  mask_threshold=source.mask_threshold, cache_dir=folder)
    for index in progress(range(len(dataset)), len(dataset)):
        dataset.write_cache(index)
    return folder, len(dataset)
