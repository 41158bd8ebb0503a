"""HptCallback outside an experiment, with either Lightning package, and its warm start; real training
of a tiny model on a few batches, in this process."""

import copy
import doctest
import subprocess
import sys

import lightning.pytorch
import pytest
import pytorch_lightning
import torch
from torch.utils.data import DataLoader, TensorDataset

import hpt_core
import hpt_lightning
from hpt_lightning import HptCallback, LightningHptCallback, PytorchLightningHptCallback, callback, metrics, packages
from hpt_lightning.warm_start import load_weights_keeping_hyperparameters

PACKAGES = {"lightning.pytorch": lightning.pytorch, "pytorch_lightning": pytorch_lightning}
CALLBACKS = {"lightning.pytorch": LightningHptCallback, "pytorch_lightning": PytorchLightningHptCallback}


@pytest.fixture(autouse=True)
def outside_an_experiment(tmp_path, monkeypatch):
    for name in ("HPT_CONTROLLER_URL", "HPT_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(1)


def regression_module(package, lr=0.1):
    class Regression(package.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=lr, momentum=0.9)

    return Regression()


def data():
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(32, 4, generator=generator)
    return DataLoader(TensorDataset(features, features.sum(dim=1, keepdim=True)), batch_size=8)


def trainer(package, callbacks, max_epochs=3):
    return package.Trainer(max_epochs=max_epochs, callbacks=callbacks, accelerator="cpu", logger=False,
                           enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)


def train(package, callbacks):
    package.seed_everything(7)
    model = regression_module(package)
    run = trainer(package, callbacks)
    run.fit(model, data(), data())
    return run, model


@pytest.mark.parametrize("package_name", sorted(PACKAGES))
def test_outside_an_experiment_the_trainer_trains_as_it_would_without_hpt(package_name, capsys, tmp_path):
    package = PACKAGES[package_name]
    plain_run, plain_model = train(package, [])
    hpt = CALLBACKS[package_name](hpt_core.init())
    assert isinstance(hpt, package.Callback) and hpt.ckpt_path is None
    run, model = train(package, [hpt])
    assert (run.current_epoch, run.global_step) == (plain_run.current_epoch, plain_run.global_step) == (3, 12)
    for weights, plain_weights in zip(model.state_dict().values(), plain_model.state_dict().values()):
        assert torch.equal(weights, plain_weights)
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[hpt local]")]
    assert [line.split(":")[0] for line in shown] == [f"[hpt local] validation after {4 * epoch} batches, {epoch} "
                                                      "epochs" for epoch in (1, 2, 3)]  # no sanity-check report
    assert "val_loss=" in shown[-1]
    assert list(tmp_path.iterdir()) == []  # no checkpoints: the Trainer's own settings hold


def test_each_package_has_a_plain_callback_class_and_hpt_callback_makes_the_imported_ones():
    for package_name, klass in CALLBACKS.items():
        assert issubclass(klass, PACKAGES[package_name].Callback) and issubclass(klass, HptCallback)
        assert klass.__module__ != package_name and klass.package == package_name
    assert not issubclass(LightningHptCallback, pytorch_lightning.Callback)
    assert type(HptCallback(hpt_core.init())) is LightningHptCallback  # both imported: lightning.pytorch's


def test_a_trainer_of_the_other_package_names_the_callback_class_to_use():
    other = trainer(pytorch_lightning, [LightningHptCallback(hpt_core.init())])
    with pytest.raises(TypeError, match=r"hpt's callback for `pytorch_lightning` is "
                                        r"`hpt_lightning.PytorchLightningHptCallback`"):
        other.fit(regression_module(pytorch_lightning), data(), data())


def test_a_trainer_with_callbacks_of_the_other_package_is_a_clear_error():
    mixed = trainer(lightning.pytorch, [HptCallback(hpt_core.init()), pytorch_lightning.callbacks.EarlyStopping("val_loss")])
    with pytest.raises(TypeError, match=r"comes from `lightning.pytorch` but these callbacks do not: EarlyStopping "
                                        r"\(pytorch_lightning\)"):
        mixed.fit(regression_module(lightning.pytorch), data(), data())


def test_the_callback_takes_the_package_the_program_imported():
    # a fresh interpreter, as a user's script: hpt_lightning imports no Lightning, the script imports one
    program = ("import sys, hpt_core, hpt_lightning\n"
               "imported = lambda: sorted(set(hpt_lightning.packages.PACKAGES) & set(sys.modules))\n"
               "print(imported())\n"
               "import pytorch_lightning\n"
               "hpt = hpt_lightning.HptCallback(hpt_core.init())\n"
               "print(type(hpt).__name__, isinstance(hpt, pytorch_lightning.Callback), imported())")
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True,
                            env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert result.stdout.splitlines() == ["[]", "PytorchLightningHptCallback True ['pytorch_lightning']"]


def test_a_warm_start_takes_the_weights_and_optimizer_state_but_keeps_its_own_hyperparameters(tmp_path):
    parent_run, parent = train(lightning.pytorch, [])
    parent_run.save_checkpoint(tmp_path / "parent.ckpt")
    parent_momentum = parent_run.optimizers[0].state_dict()["state"][0]["momentum_buffer"].clone()

    class LoadParent(lightning.pytorch.Callback):
        def on_fit_start(self, trainer, pl_module):
            load_weights_keeping_hyperparameters(trainer, tmp_path / "parent.ckpt")
            self.weights = {name: tensor.clone() for name, tensor in pl_module.state_dict().items()}
            self.optimizer = copy.deepcopy(trainer.optimizers[0].state_dict())

    child_start = LoadParent()
    child = regression_module(lightning.pytorch, lr=0.003)
    child_run = trainer(lightning.pytorch, [child_start], max_epochs=1)
    child_run.fit(child, data(), data())
    assert all(torch.equal(child_start.weights[name], tensor) for name, tensor in parent.state_dict().items())
    assert torch.equal(child_start.optimizer["state"][0]["momentum_buffer"], parent_momentum)
    assert child_start.optimizer["param_groups"][0]["lr"] == 0.003  # the parent's was 0.1
    assert child_run.current_epoch == 1  # counters start at zero


@pytest.mark.parametrize("module", [callback, metrics, packages, hpt_lightning])
def test_the_docstring_examples_run(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
