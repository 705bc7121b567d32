"""KAN convolution layers: every family of Drokin (2024) in 1D/2D/3D, the bottleneck variant, weight import.

    >>> from kanseg.kan import create_kan_conv
    >>> layer = create_kan_conv("gram", 2, 16, 32, 3, padding=1, degree=3)
    >>> swap_convs_for_kan(monai_net, "gram")      # KAN convs inside a MONAI network (kanseg.kan.monai_interop)
"""

from kanseg.kan.basis import BasisFamily, get_family, list_families, register_family
from kanseg.kan.factory import KAN_LAYERS, create_kan_conv, is_kan_layer
from kanseg.kan.importer import from_torch_conv_kan
from kanseg.kan.layers import KANConv, bottleneck_width
from kanseg.kan.monai_interop import kan_conv_like, swap_convs_for_kan

__all__ = [
    "KAN_LAYERS",
    "BasisFamily",
    "KANConv",
    "bottleneck_width",
    "create_kan_conv",
    "from_torch_conv_kan",
    "get_family",
    "is_kan_layer",
    "kan_conv_like",
    "list_families",
    "register_family",
    "swap_convs_for_kan",
]
