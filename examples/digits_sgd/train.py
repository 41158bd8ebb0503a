"""A plain-Python hpt trial: a linear classifier on scikit-learn's digits, trained epoch by epoch.

Runs inside an experiment (`hpt experiment create adaptive_asha.yaml .`) and, unchanged, by hand
(`HPT_CONFIG=adaptive_asha.yaml python train.py`), with the experiment file's defaults.
"""

import pickle

import numpy as np
from sklearn.datasets import load_digits
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import train_test_split

import hpt_core


def load_data():
    features, labels = load_digits(return_X_y=True)
    features = features / 16.0
    return train_test_split(features, labels, test_size=0.25, random_state=0, stratify=labels)


def main():
    ctx = hpt_core.init()
    x_train, x_val, y_train, y_val = load_data()
    batch_size = ctx.get_hparam("batch_size")
    params = {
        "loss": "log_loss",
        "penalty": ctx.get_hparam("penalty"),
        "alpha": ctx.get_hparam("optimizer.alpha"),
        "learning_rate": "constant",
        "eta0": ctx.get_hparam("optimizer.learning_rate"),
        "random_state": ctx.trial_seed,
    }
    model, epoch, batches = SGDClassifier(**params), 0, 0
    if ctx.restore is not None:  # a resumed trial, or a PBT child starting from its parent's model
        with open(f"{ctx.restore.path}/model.pkl", "rb") as handle:
            model = pickle.load(handle).set_params(**params)  # this trial's hyperparameters win
        if not ctx.restore.warm_start:
            epoch, batches = ctx.restore.epochs, ctx.restore.batches
    classes = np.unique(y_train)
    for target in ctx.targets():
        while epoch < target and not ctx.should_stop():
            order = np.random.default_rng(ctx.trial_seed + epoch).permutation(len(x_train))
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                model.partial_fit(x_train[rows], y_train[rows], classes=classes)
                batches += 1
            epoch += 1
            ctx.report_training({"train_error": 1.0 - model.score(x_train, y_train)}, batches=batches, epochs=epoch)
        accuracy = model.score(x_val, y_val)
        ctx.report_validation({"validation_error": 1.0 - accuracy, "accuracy": accuracy}, batches=batches, epochs=epoch)
        if ctx.should_checkpoint():
            with ctx.save_checkpoint(batches=batches, epochs=epoch) as path:
                with open(path / "model.pkl", "wb") as handle:
                    pickle.dump(model, handle)


if __name__ == "__main__":
    main()
