"""Mount facts of a mount point: a separate file system, and its options (nodev, nosuid, noexec).

The running state (/proc/mounts, the last entry for an over-mounted point) decides; when
/etc/fstab also has the mount point, it must carry the options too, or they are lost at reboot.
"""

from __future__ import annotations

from pydantic import Field

from garrison.agent.assessment import facts
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import (
    DevicePath,
    IfMissing,
    Probe,
    ProbeParams,
    if_missing,
    register_probe,
)

Option = str


class MountParams(ProbeParams):
    mountpoint: DevicePath
    separate: bool = False  # the check is "is it its own file system"
    options: list[Option] = Field(default_factory=list, max_length=16)  # all required
    options_any: list[Option] = Field(default_factory=list, max_length=16)  # one of them required
    not_mounted: IfMissing = "not_applicable"  # option checks when it is not a separate mount
    check_fstab: bool = True


def _missing(opts: tuple[str, ...], params: MountParams) -> list[str]:
    missing = [o for o in params.options if o not in opts]
    if params.options_any and not any(o in opts for o in params.options_any):
        missing.append(" or ".join(params.options_any))
    return missing


@register_probe
class Mount(Probe[MountParams]):
    name = "mount"
    Params = MountParams

    def run(self, env: Env, params: MountParams) -> Outcome:
        mp = params.mountpoint.rstrip("/") or "/"
        entries = [m for m in facts.mounts(env) if m.mountpoint == mp]
        if not entries:
            if params.separate:
                return Outcome.bad(
                    f"{mp} is not a separate file system", value="not mounted", file="/proc/mounts"
                )
            return if_missing(params.not_mounted, f"{mp} is not a separate file system", "/proc/mounts")
        m = entries[-1]
        shown = ",".join(m.options)
        missing = _missing(m.options, params)
        if missing:
            return Outcome.bad(
                f"{mp} is mounted without {', '.join(missing)}", value=shown, file=m.file, line=m.line
            )
        if params.check_fstab:
            for f in facts.fstab(env):
                if f.mountpoint.rstrip("/") == mp:
                    missing = _missing(f.options, params)
                    if missing:
                        return Outcome.bad(
                            f"{mp} has the options now, but /etc/fstab lacks {', '.join(missing)}"
                            f" (lost at the next mount)",
                            value=",".join(f.options),
                            file=f.file,
                            line=f.line,
                        )
        what = (
            "a separate file system"
            if not (params.options or params.options_any)
            else "mounted with "
            + (", ".join(params.options + ([" or ".join(params.options_any)] if params.options_any else [])))
        )
        return Outcome.ok(f"{mp} is {what} ({m.fstype})", value=shown, file=m.file, line=m.line)
