"""Package sources of the inventory collector: one module per package manager.

Each module registers a :class:`~garrison.agent.collectors.packages.base.PackageSource`
with :func:`~garrison.agent.collectors.packages.base.register_package_source`.
"""
