"""PyTorch Lightning integration for hpt: add `HptCallback(ctx)` to a Trainer and it becomes an hpt trial.

    import hpt_core
    from hpt_lightning import HptCallback

    ctx = hpt_core.init()
    model = LitModel(lr=ctx.get_hparam("lr"))
    hpt = HptCallback(ctx)
    trainer = Trainer(max_epochs=20, callbacks=[hpt, EarlyStopping("val_loss")])
    trainer.fit(model, datamodule, ckpt_path=hpt.ckpt_path)

Works with `lightning.pytorch` and `pytorch_lightning` alike (see docs/lightning.md).
"""

from hpt_lightning.callback import CHECKPOINT_FILE, HptCallback

__all__ = ["CHECKPOINT_FILE", "HptCallback"]
