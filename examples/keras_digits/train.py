"""A Keras hpt trial: a small dense classifier on scikit-learn's digits, trained with `HptCallback`.

Runs inside an experiment (`hpt experiment create adaptive_asha.yaml .`, or `pbt.yaml`) and,
unchanged, by hand (`HPT_CONFIG=adaptive_asha.yaml python train.py`), with the experiment file's
defaults. Any Keras backend works (`KERAS_BACKEND=torch`).
"""

import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import hpt_core
from hpt_keras import HptCallback


def load_data():
    features, labels = load_digits(return_X_y=True)
    features = (features / 16.0).astype("float32")
    return train_test_split(features, labels, test_size=0.25, random_state=0, stratify=labels)


def build_model(hparams):
    """The network from the hyperparameters; PBT perturbs only what keeps its shape (not `units`)."""
    model = keras.Sequential([
        keras.Input((64,)),
        keras.layers.Dense(hparams["units"], activation="relu"),
        keras.layers.Dropout(hparams["dropout"]),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(hparams["learning_rate"]),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def main():
    ctx = hpt_core.init()
    callback = HptCallback(ctx)  # seeds Keras with the trial seed, so create it before the model
    x_train, x_val, y_train, y_val = load_data()
    model = build_model(ctx.get_hparams())
    model.fit(x_train, y_train, validation_data=(x_val, y_val), batch_size=ctx.get_hparam("batch_size"),
              epochs=callback.epochs, initial_epoch=callback.initial_epoch, verbose=2,
              callbacks=[keras.callbacks.EarlyStopping("val_loss", patience=5), callback])


if __name__ == "__main__":
    main()
