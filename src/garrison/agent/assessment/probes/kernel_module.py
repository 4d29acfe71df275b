"""Whether a kernel module is loaded, and whether it can be loaded at all.

``disabled`` passes when the module is not loaded and cannot be: the running kernel was built
without it (its build configuration says so), or modprobe configuration redirects its
``install`` to /bin/false or /bin/true. A ``blacklist`` line alone is not enough: it only stops
loading by alias, an explicit ``modprobe`` still loads the module. Built into the kernel fails.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe

NOOP_COMMANDS = {"/bin/true", "/bin/false", "/usr/bin/true", "/usr/bin/false", "true", "false"}


class KernelModuleParams(ProbeParams):
    name: str = Field(pattern=r"^[a-z0-9_-]{1,64}$")
    kconfig: str | None = Field(default=None, pattern=r"^CONFIG_[A-Z0-9_]{1,64}$")
    expect: Literal["disabled", "not_loaded"] = "disabled"


@register_probe
class KernelModule(Probe[KernelModuleParams]):
    name = "kernel_module"
    Params = KernelModuleParams

    def run(self, env: Env, params: KernelModuleParams) -> Outcome:
        mod = facts.module_name(params.name)
        loaded = facts.loaded_modules(env)
        if loaded is not None and mod in loaded:
            return Outcome.bad(
                f"module {mod} is loaded", value="loaded", file="/proc/modules", line=loaded[mod]
            )
        cfg = facts.kernel_config(env)
        if params.kconfig and cfg is not None:
            cfg_file, options = cfg
            state = options.get(params.kconfig)
            if state == "y":
                return Outcome.bad(
                    f"{params.kconfig}=y: {mod} is built into the running kernel",
                    value="built-in",
                    file=cfg_file,
                )
            if state is None:
                return Outcome.ok(
                    f"{params.kconfig} is not set: the running kernel has no {mod}",
                    value="unavailable",
                    file=cfg_file,
                )
        if loaded is None:
            # No /proc/modules: the kernel cannot load modules, so only built-in code counts.
            if cfg is not None and cfg[1].get("CONFIG_MODULES") is None and params.kconfig is None:
                return Outcome.err(
                    f"kernel without module support; no kconfig symbol given to tell "
                    f"whether {mod} is built in"
                )
            if cfg is not None and cfg[1].get("CONFIG_MODULES") is None:
                return Outcome.ok(
                    f"the kernel cannot load modules and {mod} is not built in",
                    value="unavailable",
                    file=cfg[0],
                )
            return Outcome.err("cannot read the list of loaded modules (/proc/modules)")
        if params.expect == "not_loaded":
            return Outcome.ok(f"module {mod} is not loaded", value="not loaded", file="/proc/modules")
        blacklisted = None
        for entry in facts.modprobe_config(env):
            if not entry.args or facts.module_name(entry.args[0]) != mod:
                continue
            if entry.directive == "install" and len(entry.args) >= 2 and entry.args[1] in NOOP_COMMANDS:
                return Outcome.ok(
                    f"{entry.file}:{entry.line} stops {mod} from loading",
                    value=" ".join((entry.directive, *entry.args)),
                    file=entry.file,
                    line=entry.line,
                )
            if entry.directive == "blacklist" and blacklisted is None:
                blacklisted = entry
        if blacklisted is not None:
            return Outcome.bad(
                f"{mod} is only blacklisted ({blacklisted.file}:{blacklisted.line}); "
                f"an explicit modprobe still loads it: add 'install {mod} /bin/false'",
                value="blacklisted",
                file=blacklisted.file,
                line=blacklisted.line,
            )
        return Outcome.bad(
            f"{mod} can be loaded: no 'install {mod} /bin/false' in modprobe.d",
            value="loadable",
            file="/etc/modprobe.d",
        )
