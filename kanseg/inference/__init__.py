"""Inference on new scans: sliding-window prediction for 2D images and 3D NIfTI volumes.

```python
from kanseg.inference import predict, Predictor

report = predict("runs/busi/best.pt", ["scans/", "extra.png"], "predictions/", tta=True, overlay=True)
print(report.summary())                                       # "12 of 12 inputs predicted, 0 failed"

predictor = Predictor.from_checkpoint("runs/busi/best.pt", roi_size=256, overlap=0.5)
mask = predictor.predict_mask(image)                         # (H, W, C) uint8 -> (H, W) uint8

predict(["fold0/best.pt", "fold1/best.pt"], "scans/", "predictions/")  # an ensemble: probabilities averaged
```

Modules: ``readers`` (files -> native arrays, input checks), ``sliding_window`` (MONAI sliding window
+ flip TTA), ``predictor`` (model + preprocessing), ``ensemble`` (several checkpoints averaged), ``writers``
(atomic PNG / NIfTI), ``overlays``, ``batch`` (files and folders -> report).
"""

from kanseg.inference.batch import PredictionOutcome, PredictionReport, predict, predict_scan
from kanseg.inference.ensemble import EnsemblePredictor
from kanseg.inference.predictor import Predictor
from kanseg.inference.readers import collect_inputs, read_image, read_volume
from kanseg.inference.sliding_window import WindowPredictor, sliding_window_probabilities
from kanseg.inference.writers import write_nifti, write_png

__all__ = [
    "EnsemblePredictor",
    "PredictionOutcome",
    "PredictionReport",
    "Predictor",
    "WindowPredictor",
    "collect_inputs",
    "predict",
    "predict_scan",
    "read_image",
    "read_volume",
    "sliding_window_probabilities",
    "write_nifti",
    "write_png",
]
