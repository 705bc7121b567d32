"""Segmentation templates with pluggable KAN blocks (2D and 3D) and named presets.

    >>> from kanseg.models import create_model, list_models
    >>> list_models("unet-*")
    ['unet-bernstein', 'unet-bspline', 'unet-chebyshev', 'unet-conv', ...]
    >>> model = create_model("unet-gram", spatial_dims=2, in_channels=3, out_channels=1)
    >>> model(torch.randn(1, 3, 67, 93)).shape
    torch.Size([1, 1, 67, 93])

Templates (:class:`UNet`, :class:`UNetPlusPlus`, :class:`AttentionUNet`) take block names from
:func:`list_blocks`: ``conv``, ``kan:<family>``, ``kan:<family>-bottleneck``. KAN encoders for
segmentation-models-pytorch live in :mod:`kanseg.models.smp_encoders` (imported on demand: it loads smp).
MONAI's DynUNet with KAN convs is the template :class:`~kanseg.models.dynunet.KANDynUNet` (``dynunet-gram``).
:func:`from_pretrained` loads a ``model.safetensors`` + ``config.json`` folder (``kanseg export --format safetensors``).
KAN mixers (self-attention, focal modulation) join any template through ``mixer`` (after the bottleneck) or
``decoder_mixer`` (:mod:`kanseg.models.mixers`). Established baselines (``monai-basicunet``, ``monai-dynunet``,
``smp-unet-resnet18``, ``smp-unet-resnet34``) are wrapped in :mod:`kanseg.models.baselines`.
"""

from kanseg.models.attention_unet import AttentionUNet
from kanseg.models.base import SegmentationModel, UNetEncoder
from kanseg.models.blocks import ConvBlock, ModelConfigError, create_block, list_blocks
from kanseg.models.pretrained import from_pretrained, save_pretrained
from kanseg.models.registry import Preset, create_model, get_preset, list_models, register_model
from kanseg.models.unet import UNet
from kanseg.models.unetpp import UNetPlusPlus

__all__ = [
    "AttentionUNet",
    "ConvBlock",
    "ModelConfigError",
    "Preset",
    "SegmentationModel",
    "UNet",
    "UNetEncoder",
    "UNetPlusPlus",
    "create_block",
    "create_model",
    "from_pretrained",
    "get_preset",
    "list_blocks",
    "list_models",
    "register_model",
    "save_pretrained",
]
