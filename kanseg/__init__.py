"""kanseg: medical image segmentation with Kolmogorov-Arnold convolutions."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # Lazy, so `import kanseg` stays light: `kanseg.predict(...)` is kanseg.inference.predict.
    if name == "predict":
        from kanseg.inference import predict

        return predict
    raise AttributeError(f"module 'kanseg' has no attribute {name!r}")
