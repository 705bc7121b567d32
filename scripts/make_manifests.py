#!/usr/bin/env python
"""Write ``data_manifests/{busi,glas,cvc}.json`` from the per-file facts in ``../shared/manifest-facts``.

    python scripts/make_manifests.py [--facts ../shared/manifest-facts] [--out data_manifests]

BUSI and CVC-ClinicDB cases, sizes and sha256 come from the facts CSVs; GlaS (no copy available)
is described from its documented release (names and counts, no checksums). Splits are computed
once here with :mod:`kanseg.data.splits` and frozen as explicit id lists.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from kanseg.data.manifests import FORMAT
from kanseg.data.splits import (
    N_FOLDS,
    contiguous_blocks,
    cross_validation,
    equal_blocks,
    legacy_split,
    stratified_folds,
    ukan_sorted,
)

REPO = Path(__file__).resolve().parents[1]
LEGACY_SEEDS = (2981, 6142, 1187)
CLEAN_SEED = 0
CVC_BLOCK_STARTS = ("429", "504")  # sequence boundaries (large frame-to-frame change): 1-428 / 429-503 / 504-612
# transfer study (benchmarks/transfer_peft.py): clean's test sequences cut at a sequence boundary into a pool
# of adaptation frames (504-546) and a test set of other sequences (547-612)
CVC_TRANSFER_TEST_START = "547"
CVC_TRANSFER_SHOTS = (10, 30)
LEGACY_NOTE = ("U-KAN protocol: ids in U-KAN's sorted(glob('images/*.png')) order, split as sklearn "
               "train_test_split(ids, test_size=0.2, random_state={seed}); the 20% serves as BOTH validation "
               "(model selection) and report set, as in the published tables, so it is not an unbiased test score")

SOURCES = {
    "busi": {
        "title": "BUSI: Breast Ultrasound Images Dataset (Dataset_BUSI_with_GT)",
        "source": {"url": "https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
                   "mirror": "https://www.kaggle.com/datasets/aryashah2k/breast-ultrasound-images-dataset"},
        "licence": "Published with an open-access Data in Brief data article (CC BY 4.0); cite the article. "
                   "Check the source page for current terms before redistributing.",
        "citation": "Al-Dhabyani W, Gomaa M, Khaled H, Fahmy A. Dataset of breast ultrasound images. "
                    "Data in Brief 28:104863, 2020. doi:10.1016/j.dib.2019.104863",
        "layout": "Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (N).png with <class> (N)_mask.png "
                  "(+ _mask_1.png, _mask_2.png for 18 lesions, OR-merged)",
    },
    "glas": {
        "title": "GlaS: Gland Segmentation in Colon Histology Images (MICCAI 2015, Warwick-QU)",
        "source": {"url": "https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/"},
        "licence": "Released by the TIA Centre, University of Warwick, for research use under the challenge's "
                   "terms; cite the challenge paper. Check the source page before redistributing.",
        "citation": "Sirinukunwattana K, Pluim JPW, Chen H, et al. Gland segmentation in colon histology images: "
                    "The GlaS challenge contest. Medical Image Analysis 35:489-502, 2017",
        "layout": "{train_1..85,testA_1..60,testB_1..20}.bmp with <name>_anno.bmp instance maps, Grade.csv",
    },
    "cvc": {
        "title": "CVC-ClinicDB (colonoscopy polyp frames)",
        "source": {"url": "https://polyp.grand-challenge.org/CVCClinicDB/"},
        "licence": "Free for research use provided the reference paper is cited (terms of the release page).",
        "citation": "Bernal J, Sanchez FJ, Fernandez-Esparrach G, Gil D, Rodriguez C, Vilarino F. WM-DOVA maps for "
                    "accurate polyp highlighting in colonoscopy: validation vs. saliency maps from physicians. "
                    "Computerized Medical Imaging and Graphics 43:99-111, 2015",
        "layout": "Original/N.tif + 'Ground Truth'/N.tif (official) or Original/N.png + 'Ground Truth'/N.png (mirror)",
    },
}


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def legacy_splits(ids: list[str], extra: dict[str, list[str]] | None = None) -> dict:
    splits = {}
    for seed in LEGACY_SEEDS:
        train, val = legacy_split(ukan_sorted(ids), seed)
        entry = {"train": train, "val": val, "test": val, "note": LEGACY_NOTE.format(seed=seed)}
        if extra:
            entry["extra"] = {}
            for group, group_ids in extra.items():
                g_train, g_val = legacy_split(ukan_sorted(group_ids), seed)
                entry["extra"][group] = {"train": g_train, "val": g_val, "test": g_val}
        splits[f"legacy-{seed}"] = entry
    return splits


def clean_folds(clean: dict, folds: list[list[str]], how: str, extra_folds: dict[str, list[list[str]]] | None = None
                ) -> dict:
    """``clean-fold<k>``, k = 0..4: ``folds`` partition clean's train + val (``how`` says how they were cut);
    fold k validates, the other four train, clean's test set is kept as it is."""
    splits = {}
    for k, entry in enumerate(cross_validation(folds, clean["test"])):
        note = (f"cross-validation fold {k} of {len(folds)} over the {sum(map(len, folds))} train + val cases of "
                f"'clean' ({how}): validation = fold {k}, training = the other folds, test = clean's test set")
        others = {key: ids for key, ids in clean.items() if isinstance(ids, list) and key not in entry}  # testA/B
        splits[f"clean-fold{k}"] = {**entry, **others, "note": note}
        if extra_folds:
            splits[f"clean-fold{k}"]["extra"] = {
                g: cross_validation(fs, clean["extra"][g]["test"])[k] for g, fs in extra_folds.items()}
    return splits


def random_folds(clean: dict, groups: dict[str, str] | None = None) -> list[list[str]]:
    """Seeded folds of clean's train + val, stratified by ``groups`` (case id -> group) when given."""
    ids = clean["train"] + clean["val"]
    return stratified_folds(ids, [(groups or {}).get(i, "") for i in ids], N_FOLDS, CLEAN_SEED)


def busi_manifest(facts: Path) -> dict:
    rows = _read_csv(facts / "busi.csv")
    cases = []
    for row in rows:
        paths = [row["image"], *row["masks"].split(";")]
        shas = [row["image_sha256"], *row["mask_sha256"].split(";")]
        cases.append({"id": row["case_id"], "group": row["cls"], "height": int(row["height"]),
                      "width": int(row["width"]), "files": dict(zip(paths, shas))})
    by_class = {c: [r["case_id"] for r in rows if r["cls"] == c] for c in ("benign", "malignant", "normal")}
    lesions = by_class["benign"] + by_class["malignant"]
    groups = ["benign"] * len(by_class["benign"]) + ["malignant"] * len(by_class["malignant"])
    folds = stratified_folds(lesions, groups, 5, CLEAN_SEED)
    normal_folds = stratified_folds(by_class["normal"], ["normal"] * len(by_class["normal"]), 5, CLEAN_SEED)
    # clean: 5 class-stratified folds of the lesion cases; fold 0 is the fixed test set, fold 1 validation
    train = [i for f in folds[2:] for i in f]
    normal = {"train": [i for f in normal_folds[2:] for i in f], "val": normal_folds[1], "test": normal_folds[0]}
    clean = {"train": train, "val": folds[1], "test": folds[0], "extra": {"normal": normal},
             "note": "clean protocol: 5 class-stratified folds over the 647 benign+malignant cases (seed 0); fold 0 "
                     "is the fixed test set, fold 1 validation, folds 2-4 training"}
    group = {i: g for i, g in zip(lesions, groups)}
    counts = {"cases": len(rows), "images": len(rows), "masks": sum(len(c["files"]) - 1 for c in cases),
              **{c: len(v) for c, v in by_class.items()}, "lesion_cases": len(lesions)}
    return {"counts": counts, "cases": cases, "splits": {
        **legacy_splits(lesions, {"normal": by_class["normal"]}), "clean": clean,
        **clean_folds(clean, random_folds(clean, group), "class-stratified, seed 0",
                      {"normal": random_folds(normal)}),
    }}


def glas_manifest() -> dict:
    names = [f"{subset}_{k}" for subset, n in (("train", 85), ("testA", 60), ("testB", 20)) for k in range(1, n + 1)]
    cases = [{"id": n, "group": n.split("_")[0], "height": None, "width": None,
              "files": {f"{n}.bmp": None, f"{n}_anno.bmp": None}} for n in names]
    official_train = [n for n in names if n.startswith("train_")]
    train, val = legacy_split(ukan_sorted(official_train), CLEAN_SEED)
    test_a = [n for n in names if n.startswith("testA_")]
    test_b = [n for n in names if n.startswith("testB_")]
    clean = {"train": train, "val": val, "test": test_a + test_b, "testA": test_a, "testB": test_b,
             "note": "clean protocol: official train (85) with 17 carved out for validation (seed 0); test = "
                     "official test A + test B, report A and B separately"}
    counts = {"cases": 165, "images": 165, "masks": 165, "train": 85, "testA": 60, "testB": 20}
    return {"counts": counts, "cases": cases, "extra_files": ["Grade.csv"],
            "splits": {**legacy_splits(names), "clean": clean,
                       **clean_folds(clean, random_folds(clean), "random, seed 0")}}


def cvc_manifest(facts: Path) -> dict:
    rows = _read_csv(facts / "cvc-clinicdb.csv")
    cases = []
    for row in rows:
        n = row["case_id"]
        files = {f"Original/{n}.tif": row["tif_image_sha256"], f"Ground Truth/{n}.tif": row["tif_mask_sha256"],
                 f"Original/{n}.png": row["png_image_sha256"], f"Ground Truth/{n}.png": row["png_mask_sha256"]}
        cases.append({"id": n, "height": int(row["height"]), "width": int(row["width"]), "files": files})
    ids = sorted((r["case_id"] for r in rows), key=int)
    train, val, test = contiguous_blocks(ids, CVC_BLOCK_STARTS)
    clean = {"train": train, "val": val, "test": test,
             "note": "clean protocol: contiguous frame blocks cut at video-sequence boundaries "
                     f"(train 1-{int(CVC_BLOCK_STARTS[0]) - 1}, val {CVC_BLOCK_STARTS[0]}-"
                     f"{int(CVC_BLOCK_STARTS[1]) - 1}, test {CVC_BLOCK_STARTS[1]}-{ids[-1]}); "
                     "neighbouring frames are near-duplicates, so random frame splits leak"}
    counts = {"cases": len(rows), "images": len(rows), "masks": len(rows)}
    return {"counts": counts, "cases": cases, "variants": ["tif", "png"],
            "splits": {**legacy_splits(ids), "clean": clean,
                       **clean_folds(clean, equal_blocks(train + val, N_FOLDS),
                                     "contiguous frame blocks, as neighbouring frames are near-duplicates"),
                       **transfer_splits(test)}}


def transfer_splits(held_out: list[str]) -> dict:
    """``transfer-<n>shot``: adapt a model trained on clean's train/val sequences with ``n`` labelled frames spread
    evenly over the first held-out sequences, test on the remaining held-out sequences. The adaptation frames
    are also the validation set (no other labels exist in the few-shot setting)."""
    pool, test = contiguous_blocks(held_out, [CVC_TRANSFER_TEST_START])
    splits = {}
    for shots in CVC_TRANSFER_SHOTS:
        picks = sorted({round(i * (len(pool) - 1) / (shots - 1)) for i in range(shots)})
        frames = [pool[i] for i in picks]
        splits[f"transfer-{shots}shot"] = {
            "train": frames, "val": frames, "test": test,
            "note": f"transfer study: {shots} frames spread evenly over frames {pool[0]}-{pool[-1]} (held-out "
                    f"sequences) to adapt on, validation = the same frames, test = frames {test[0]}-{test[-1]} "
                    "(other held-out sequences); pretrain on split 'clean' (its test frames are never trained on)"}
    return splits


def write(out: Path, name: str, body: dict) -> Path:
    manifest = {"format": FORMAT, "name": name, **SOURCES[name], "default_split": "clean", **body}
    path = out / f"{name}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=Path, default=REPO.parent / "shared" / "manifest-facts")
    parser.add_argument("--out", type=Path, default=REPO / "data_manifests")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for name, body in (("busi", busi_manifest(args.facts)), ("glas", glas_manifest()),
                       ("cvc", cvc_manifest(args.facts))):
        print(f"wrote {write(args.out, name, body)}: {body['counts']['cases']} cases, splits {', '.join(body['splits'])}")


if __name__ == "__main__":
    main()
