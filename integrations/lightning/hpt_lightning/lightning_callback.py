"""`LightningHptCallback`: hpt's callback for Trainers of `lightning.pytorch`."""

import lightning.pytorch

from hpt_lightning.callback import HptCallback


class LightningHptCallback(HptCallback, lightning.pytorch.Callback):
    """`HptCallback` as a `lightning.pytorch.Callback`, for a `lightning.pytorch.Trainer`."""

    package = "lightning.pytorch"
