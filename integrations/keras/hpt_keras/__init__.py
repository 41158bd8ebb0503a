"""Keras integration for hpt: `HptCallback` makes one `model.fit` call an hpt trial.

    import hpt_core
    from hpt_keras import HptCallback

    ctx = hpt_core.init()
    callback = HptCallback(ctx)                      # seeds Keras with the trial seed
    model = build_model(ctx.get_hparams())
    model.fit(x, y, validation_data=(x_val, y_val), epochs=callback.epochs,
              initial_epoch=callback.initial_epoch, callbacks=[callback])

See docs/keras.md.
"""

from hpt_keras.callback import HptCallback
from hpt_keras.checkpoints import WEIGHTS_FILE, load_training_state, save_training_state

__all__ = ["HptCallback", "WEIGHTS_FILE", "load_training_state", "save_training_state"]
