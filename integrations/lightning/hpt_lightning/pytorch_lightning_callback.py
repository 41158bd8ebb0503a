"""`PytorchLightningHptCallback`: hpt's callback for Trainers of `pytorch_lightning`."""

import pytorch_lightning

from hpt_lightning.callback import HptCallback


class PytorchLightningHptCallback(HptCallback, pytorch_lightning.Callback):
    """`HptCallback` as a `pytorch_lightning.Callback`, for a `pytorch_lightning.Trainer`."""

    package = "pytorch_lightning"
