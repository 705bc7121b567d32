#!/usr/bin/env python
"""Write ``data_manifests/hippocampus.json`` from a copy of MSD Task04_Hippocampus (208 training pairs).

    python scripts/make_hippocampus_manifest.py [--data ../shared/data/Task04_Hippocampus] [--out data_manifests]

Per case: the two files with their sha256 and the volume shape. Split ``clean``: the sorted ids
permuted once with ``numpy.random.RandomState(0)``; the first 40 are test, the next 20 val, the
remaining 148 train, frozen as explicit id lists. Use it with ``--split hippocampus`` (the
manifest's default split) or ``--split hippocampus:clean`` on the dataset.json; ``clean-fold<k>`` (k = 0..4) are
five cross-validation folds over clean's train + val (``kanseg train --fold k``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from kanseg.data.generic import open_dataset_json
from kanseg.data.io import open_nifti
from kanseg.data.manifests import FORMAT
from kanseg.data.splits import N_FOLDS, cross_validation, stratified_folds

REPO = Path(__file__).resolve().parents[1]
SEED, N_TEST, N_VAL = 0, 40, 20


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "Task04_Hippocampus")
    parser.add_argument("--out", type=Path, default=REPO / "data_manifests")
    args = parser.parse_args()
    source = open_dataset_json(args.data)
    ids = sorted(source.cases)
    cases = []
    for case_id in ids:
        case = source.cases[case_id]
        files = {os.path.relpath(p, source.root): sha256(p) for p in (*case.image, *case.label)}
        cases.append({"id": case_id, "shape": list(open_nifti(case.image[0])[1]), "files": files})
    order = [ids[i] for i in np.random.RandomState(SEED).permutation(len(ids))]
    test, val, train = order[:N_TEST], order[N_TEST:N_TEST + N_VAL], order[N_TEST + N_VAL:]
    folds = stratified_folds(train + val, [""] * (len(train) + len(val)), N_FOLDS, SEED)
    cv = {f"clean-fold{k}": {**entry, "note": f"cross-validation fold {k} of {N_FOLDS} over clean's train + val "
                                              f"(random, seed {SEED}); test = clean's test set"}
          for k, entry in enumerate(cross_validation(folds, test))}
    manifest = {
        "format": FORMAT,
        "name": "hippocampus",
        "title": "Medical Segmentation Decathlon Task04_Hippocampus (mono-modal MRI, anterior / posterior)",
        "source": {"url": "http://medicaldecathlon.com/"},
        "licence": "CC-BY-SA 4.0",
        "citation": "Simpson AL, Antonelli M, Bakas S, et al. A large annotated medical image dataset for the "
                    "development and evaluation of segmentation algorithms. arXiv:1902.09063, 2019",
        "layout": "dataset.json + imagesTr/hippocampus_NNN.nii.gz + labelsTr/hippocampus_NNN.nii.gz "
                  "(labels 0 background, 1 anterior, 2 posterior)",
        "default_split": "clean",
        "counts": {"cases": len(ids), "images": len(ids), "labels": len(ids)},
        "cases": cases,
        "splits": {"clean": {"train": train, "val": val, "test": test,
                             "note": f"sorted ids permuted with RandomState({SEED}): {len(train)} train / "
                                     f"{len(val)} val (model selection) / {len(test)} test (report)"}, **cv},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "hippocampus.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"wrote {path}: {len(train)}/{len(val)}/{len(test)}")


if __name__ == "__main__":
    main()
