"""Behaviour sensors: process, network, file, logon and device events in MDE's hunting shape.

See :mod:`garrison.agent.sensors.base` (sink, rate cap, exclusions), ``audit`` (the kernel
interface) and ``manager`` (threads beside the agent loop). docs/sensor.md has the design and
the measurements behind it.
"""
