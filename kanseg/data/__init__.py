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

from kanseg.data.build import DATASETS, build_dataset, ensure_demo, open_source
from kanseg.data.dataset import SegmentationDataset
from kanseg.data.io import read_image, read_mask
from kanseg.data.synthetic import LAYOUTS, generate_synthetic
from kanseg.data.transforms import preprocess_image

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
