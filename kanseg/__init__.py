"""kanseg: medical image segmentation with Kolmogorov-Arnold convolutions."""

__version__ = "0.1.0"
