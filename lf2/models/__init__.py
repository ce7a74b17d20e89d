"""LF² networks: backbone, re-ID net (global head + part experts), fusion module, mean teacher."""

from lf2.models.backbone import ARCHS, build_backbone, imagenet_weights_path
from lf2.models.fusion import FM_MODES, FusionHead, FusionModule
from lf2.models.net import POOLINGS, TEST_FEATURES, ReIDNet, TrainOutputs, pool_map
from lf2.models.teacher import MeanTeacher

__all__ = [
    "ARCHS",
    "FM_MODES",
    "POOLINGS",
    "TEST_FEATURES",
    "FusionHead",
    "FusionModule",
    "MeanTeacher",
    "ReIDNet",
    "TrainOutputs",
    "build_backbone",
    "imagenet_weights_path",
    "pool_map",
]
