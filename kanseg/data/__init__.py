"""Data: dataset adapters, manifests and splits, generic dataset.json datasets, MONAI pipelines.

Contract::

    build_dataset(name_or_path, *, data_root=None, split=None, subset="train", image_size=None,
                  augment=False, seed=0, include_normal=False, patch_size=None,
                  normalization="auto", spacing=None, elastic=False, max_volume_mb=2048) -> SegmentationDataset
    dataset.num_classes, dataset.class_names     # K incl. background (2 when binary), names in label order
    dataset[i] -> {"image": (C, *spatial), "label": (1, *spatial) {0,1} or class indices, "id"}
    dataset.native_label(i)                      # bool (binary) / uint8 class indices, the file's own grid
    dataset.to_native(i, prob (K, *grid))        # -> (K, *native): undoes resize / orientation / spacing
    generate_synthetic(layout, root, n_cases=12, seed=0, **kw) -> Path
    preprocess_image(image, preprocessing) -> torch.Tensor (C, *spatial)
    DATASETS  # ("busi", "cvc", "glas", "demo")
"""

from importlib import import_module

# Exports resolve lazily (PEP 562): importing a light submodule (manifests, splits, cases) must not load
# MONAI and torch, so the command line can check names and paths before anything heavy is imported.
_EXPORTS = {
    "DATASETS": "kanseg.data.build", "build_dataset": "kanseg.data.build", "ensure_demo": "kanseg.data.build",
    "open_source": "kanseg.data.build", "SegmentationDataset": "kanseg.data.dataset",
    "read_image": "kanseg.data.io", "read_mask": "kanseg.data.io", "LAYOUTS": "kanseg.data.synthetic",
    "generate_synthetic": "kanseg.data.synthetic", "preprocess_image": "kanseg.data.transforms",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kanseg.data' has no attribute {name!r}")


__all__ = [
    "DATASETS",
    "LAYOUTS",
    "SegmentationDataset",
    "build_dataset",
    "ensure_demo",
    "generate_synthetic",
    "open_source",
    "preprocess_image",
    "read_image",
    "read_mask",
]
