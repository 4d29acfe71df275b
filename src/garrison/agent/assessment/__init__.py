"""Configuration assessment on the device: probe plugins and the evaluator of the checks
defined in :mod:`garrison.checks`."""

from garrison.agent.assessment.evaluator import CompileError, Evaluation, Evaluator, fingerprint

__all__ = ["CompileError", "Evaluation", "Evaluator", "fingerprint"]
