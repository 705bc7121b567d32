"""Data: dataset adapters, manifests and splits, generic dataset.json datasets, MONAI pipelines.

Contract::

    build_dataset(name_or_path, *, data_root=None, split=None, subset="train", image_size=None,
                  augment=False, seed=0, include_normal=False, patch_size=None) -> SegmentationDataset
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
