"""A PyTorch Lightning trial: a small classifier on scikit-learn's digits (8x8 images, shipped with it).

An ordinary Lightning script with one addition, `HptCallback`. It runs inside an experiment
(`hpt experiment create adaptive_asha.yaml` or `pbt.yaml`) and, unchanged, by hand with the experiment
file's defaults (`HPT_CONFIG=adaptive_asha.yaml python train.py`), where the Trainer trains as usual.
"""

import lightning.pytorch as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.utils.data import DataLoader, TensorDataset

import hpt_core
from hpt_lightning import HptCallback


class Digits(L.LightningDataModule):
    """The 1,797 digits, three quarters to train on and a quarter to validate on."""

    def __init__(self, batch_size):
        super().__init__()
        self.batch_size = batch_size

    def setup(self, stage):
        features, labels = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(features / 16.0, labels, test_size=0.25, random_state=0,
                                                          stratify=labels)
        self.train_set = TensorDataset(torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train))
        self.val_set = TensorDataset(torch.tensor(x_val, dtype=torch.float32), torch.tensor(y_val))

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=256)


class Classifier(L.LightningModule):
    """One hidden layer with dropout, trained with SGD and momentum."""

    def __init__(self, hidden, dropout, lr, momentum, weight_decay):
        super().__init__()
        self.save_hyperparameters()
        self.net = torch.nn.Sequential(torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout),
                                       torch.nn.Linear(hidden, 10))

    def training_step(self, batch, batch_idx):
        features, labels = batch
        loss = torch.nn.functional.cross_entropy(self.net(features), labels)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def validation_step(self, batch, batch_idx):
        features, labels = batch
        logits = self.net(features)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, labels))
        self.log("val_error", (logits.argmax(dim=1) != labels).float().mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=self.hparams.momentum,
                               weight_decay=self.hparams.weight_decay)


def main():
    torch.set_num_threads(1)
    ctx = hpt_core.init()
    L.seed_everything(ctx.trial_seed)  # the initial weights too, not only the training that follows
    model = Classifier(hidden=ctx.get_hparam("hidden"), dropout=ctx.get_hparam("dropout"),
                       lr=ctx.get_hparam("optimizer.lr"), momentum=ctx.get_hparam("optimizer.momentum"),
                       weight_decay=ctx.get_hparam("optimizer.weight_decay"))
    hpt = HptCallback(ctx)
    trainer = L.Trainer(max_epochs=16, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[hpt, EarlyStopping("val_loss", patience=3)])
    trainer.fit(model, Digits(ctx.get_hparam("batch_size")), ckpt_path=hpt.ckpt_path)


if __name__ == "__main__":
    main()
