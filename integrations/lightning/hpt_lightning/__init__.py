"""PyTorch Lightning integration for hpt: add `HptCallback(ctx)` to a Trainer and it becomes an hpt trial.

    import hpt_core
    from hpt_lightning import HptCallback

    ctx = hpt_core.init()
    model = LitModel(lr=ctx.get_hparam("lr"))
    hpt = HptCallback(ctx)
    trainer = Trainer(max_epochs=20, callbacks=[hpt, EarlyStopping("val_loss")])
    trainer.fit(model, datamodule, ckpt_path=hpt.ckpt_path)

`HptCallback(ctx)` makes the callback of the Lightning package the program imported; the class for
each package can be named too: `LightningHptCallback` (`lightning.pytorch`) and
`PytorchLightningHptCallback` (`pytorch_lightning`). Importing hpt_lightning imports neither
package (see docs/lightning.md).
"""

from typing import TYPE_CHECKING, Any

from hpt_lightning import packages
from hpt_lightning.callback import CHECKPOINT_FILE, HptCallback

if TYPE_CHECKING:
    from hpt_lightning.lightning_callback import LightningHptCallback
    from hpt_lightning.pytorch_lightning_callback import PytorchLightningHptCallback

__all__ = ["CHECKPOINT_FILE", "HptCallback", "LightningHptCallback", "PytorchLightningHptCallback"]


def __getattr__(name: str) -> Any:
    """The callback class of one Lightning package, imported (with that package) when first named."""
    for package, (_, class_name) in packages.CALLBACK_CLASSES.items():
        if name == class_name:
            return packages.callback_class(package)
    raise AttributeError(f"module 'hpt_lightning' has no attribute {name!r}")
