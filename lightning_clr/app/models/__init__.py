"""The example networks and the LightningModule that trains them."""

from lightning_clr.app.models.module import ClassificationModule
from lightning_clr.app.models.networks import MLP, CifarFull, ResNet, ResNet20, SmallCNN, WithinChannelLRN

__all__ = ["MLP", "CifarFull", "ClassificationModule", "ResNet", "ResNet20", "SmallCNN", "WithinChannelLRN"]
