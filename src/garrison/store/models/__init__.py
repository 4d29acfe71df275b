"""All tables. Each domain has its own module here; importing this package loads them all
(so ``Base.metadata`` is complete for migrations and tests)."""

import importlib
import pkgutil

from garrison.store.base import Base

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

metadata = Base.metadata
