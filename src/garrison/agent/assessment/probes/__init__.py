"""Probe plugins (one module each); see :mod:`.base`."""

from garrison.agent.assessment.probes.base import PROBES, Probe, ProbeParams, load_probes, register_probe

__all__ = ["PROBES", "Probe", "ProbeParams", "load_probes", "register_probe"]
