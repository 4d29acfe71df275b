"""Whether a host firewall filters incoming traffic: nftables, iptables, ufw or firewalld.

On the live system, as root, the loaded ruleset decides (``nft list ruleset`` and
``iptables-save``, fixed commands): a firewall is active when an input hook or the INPUT chain
has rules or a drop policy. When the ruleset cannot be read (not root, tools missing, a prepared
tree), the boot configuration decides: ufw ENABLED=yes, an enabled firewalld, or an enabled
nftables/iptables service whose rules file filters input. Kernel support for iptables alone
(/proc/net/ip_tables_names) is not a firewall.
"""

from __future__ import annotations

import re
from typing import Literal

from garrison.agent.assessment import facts, sysexec
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import Probe, ProbeParams, register_probe
from garrison.agent.assessment.probes.service import active_state, enabled_by


class FirewallParams(ProbeParams):
    expect: Literal["active"] = "active"


def nft_filters_input(text: str) -> bool:
    """True when a chain hooked on input has a rule or a drop policy."""
    for chain in re.findall(r"chain\s+\S+\s*\{(.*?)\n\s*\}", text, re.DOTALL):
        if not re.search(r"hook\s+input\b", chain):
            continue
        if re.search(r"policy\s+drop", chain):
            return True
        body = [
            ln.strip()
            for ln in chain.splitlines()
            if ln.strip() and not ln.strip().startswith(("type ", "#", "policy "))
        ]
        if body:
            return True
    return False


def iptables_filters_input(text: str) -> bool:
    return bool(
        re.search(r"^:INPUT DROP\b", text, re.MULTILINE) or re.search(r"^-A INPUT\b", text, re.MULTILINE)
    )


def runtime_state(env: Env) -> tuple[bool, str] | None:
    """(filters input?, source) from the loaded ruleset; None when it cannot be observed."""
    if not (env.live and env.ctx.is_root):
        return None
    seen = None
    nft = sysexec.run(env, "nft_ruleset")
    if nft is not None:
        if nft_filters_input(nft):
            return True, "nft list ruleset"
        seen = (False, "nft list ruleset")
    for key in ("iptables_save", "ip6tables_save"):
        ipt = sysexec.run(env, key)
        if ipt is not None:
            if iptables_filters_input(ipt):
                return True, key.replace("_", "-")
            seen = (False, key.replace("_", "-"))
    return seen


def configured(env: Env) -> list[tuple[str, str, str | None]]:
    """Firewalls set up to start at boot: (name, evidence file, systemd unit or None)."""
    out: list[tuple[str, str, str | None]] = []
    for line in (env.read_text("/etc/ufw/ufw.conf") or "").splitlines():
        if re.match(r"^\s*ENABLED\s*=\s*\"?yes\"?\s*$", line, re.IGNORECASE):
            out.append(("ufw", "/etc/ufw/ufw.conf", "ufw.service"))
    link = enabled_by(env, "firewalld.service")
    if link:
        out.append(("firewalld", link, "firewalld.service"))
    if enabled_by(env, "nftables.service"):
        for conf in ("/etc/nftables.conf", "/etc/sysconfig/nftables.conf"):
            text = env.read_text(conf)
            if text and nft_filters_input(text):
                out.append(("nftables", conf, "nftables.service"))
                break
    for unit, conf in (
        ("netfilter-persistent.service", "/etc/iptables/rules.v4"),
        ("iptables.service", "/etc/sysconfig/iptables"),
    ):
        if enabled_by(env, unit):
            text = env.read_text(conf)
            if text and iptables_filters_input(text):
                out.append(("iptables", conf, unit))
    return out


@register_probe
class Firewall(Probe[FirewallParams]):
    name = "firewall"
    Params = FirewallParams

    def run(self, env: Env, params: FirewallParams) -> Outcome:
        boot = configured(env)
        names = ", ".join(sorted({b[0] for b in boot})) or "none"
        rt = runtime_state(env)
        if rt is not None:
            active, source = rt
            if active:
                return Outcome.ok(
                    f"the loaded ruleset filters input ({source}); configured at boot: {names}",
                    value="active",
                )
            return Outcome.bad(
                f"no rule filters input in the loaded ruleset ({source}); configured at boot: {names}",
                value="inactive",
            )
        if not boot:
            return Outcome.bad(
                "no host firewall is configured (ufw, firewalld, nftables or iptables)", value="none"
            )
        if facts.systemd_running(env):
            for name, file, unit in boot:
                if unit:
                    is_active, _ = active_state(env, unit, [])
                    if is_active:
                        return Outcome.ok(
                            f"{name} is configured ({file}) and {unit} is active", value=name, file=file
                        )
            name, file, unit = boot[0]
            return Outcome.bad(
                f"{name} is configured ({file}) but {unit} is not active", value=name, file=file
            )
        name, file, _ = boot[0]
        return Outcome.ok(
            f"{name} is configured to start at boot ({file}); the loaded ruleset is not observable here",
            value=name,
            file=file,
        )
