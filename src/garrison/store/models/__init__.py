"""All tables. Each domain has its own module here; importing this package loads them all
(so ``Base.metadata`` is complete for migrations and tests)."""

from garrison.registry import import_modules
from garrison.store.base import Base

import_modules(__name__)

metadata = Base.metadata
