"""Which Lightning package a Trainer comes from (`lightning.pytorch` or `pytorch_lightning`), and hpt's callback for it.

The two ship the same classes under two names, and each Trainer checks callbacks against its own
`Callback` base class, so hpt has one callback class per package (`CALLBACK_CLASSES`), and a
Trainer given callbacks of the other package misbehaves (a checkpoint or early-stopping callback
of the other package is not run where it belongs).

>>> import lightning.pytorch
>>> "lightning.pytorch" in imported_packages()
True
>>> package_of(lightning.pytorch.Trainer(logger=False))
'lightning.pytorch'
>>> callback_class("lightning.pytorch").__name__
'LightningHptCallback'
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType
from typing import Any, Iterable

PACKAGES = ("lightning.pytorch", "pytorch_lightning")

CALLBACK_CLASSES = {
    "lightning.pytorch": ("hpt_lightning.lightning_callback", "LightningHptCallback"),
    "pytorch_lightning": ("hpt_lightning.pytorch_lightning_callback", "PytorchLightningHptCallback"),
}
"""Package -> (module, name) of its hpt callback class; each module imports its package, so only on demand."""


def imported_packages() -> tuple[str, ...]:
    """The Lightning packages the program has imported, or the one importable (`lightning.pytorch` first)."""
    imported = tuple(name for name in PACKAGES if name in sys.modules)
    if imported:
        return imported
    for name in PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        return (name,)
    raise ImportError("hpt_lightning needs PyTorch Lightning: install `lightning` or `pytorch-lightning` "
                      "(`pip install -e '.[lightning]'`)")


def callback_class(package: str) -> type:
    """hpt's callback class for a Lightning package (imports that package)."""
    module_name, class_name = CALLBACK_CLASSES[package]
    return getattr(importlib.import_module(module_name), class_name)


def package_of(instance: Any) -> str | None:
    """The Lightning package that defines the class of `instance` (or a base of it); None for neither."""
    for klass in type(instance).__mro__:
        for name in PACKAGES:
            if klass.__module__ == name or klass.__module__.startswith(f"{name}."):
                return name
    return None


def module(name: str) -> ModuleType:
    """The package itself (`Callback`, `Trainer`, `seed_everything` live at its top level)."""
    return importlib.import_module(name)


def check_one_package(trainer: Any, callbacks: Iterable[Any]) -> str:
    """The Trainer's package; raises TypeError naming each callback that comes from the other one."""
    package = package_of(trainer)
    if package is None:
        raise TypeError(f"HptCallback needs a Lightning Trainer, but got {type(trainer).__qualname__}")
    base = module(package).Callback
    foreign = [callback for callback in callbacks if not isinstance(callback, base)]
    if foreign:
        named = ", ".join(f"{type(callback).__qualname__} ({package_of(callback) or type(callback).__module__})"
                          for callback in foreign)
        raise TypeError(f"the Trainer comes from `{package}` but these callbacks do not: {named}. Import the "
                        "Trainer and every callback from one package, `lightning.pytorch` or `pytorch_lightning`; "
                        f"hpt's callback for `{package}` is `hpt_lightning.{CALLBACK_CLASSES[package][1]}`")
    return package
