"""A key's effective value in a configuration file (sshd_config, login.defs, key = value files,
apt.conf) compared with the expected one. The software's default applies when the key is absent."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from garrison.agent.assessment import confparse
from garrison.agent.assessment.compare import BadValue, Expected, Op, ValueType, compare, describe
from garrison.agent.assessment.env import Env, Outcome
from garrison.agent.assessment.probes.base import (
    DevicePath,
    IfMissing,
    Probe,
    ProbeParams,
    if_missing,
    register_probe,
)


class ConfigValueParams(ProbeParams):
    path: DevicePath | list[DevicePath]
    format: confparse.Format
    key: str = Field(min_length=1, max_length=128)
    op: Op = "eq"
    value: Expected
    type: ValueType = "str"
    section: str | None = None  # ``equals`` files with [sections]
    precedence: Literal["first", "last"] | None = None  # default: first for sshd, else last
    ignore_case: bool = True  # for the value; sshd keys are always case-insensitive
    default: str | int | None = None  # the software's built-in value when the key is absent
    absent: IfMissing = "fail"  # when the key is absent and there is no default
    missing: Literal["error", "fail", "pass", "not_applicable", "default"] = "error"  # no file at all

    @model_validator(mode="after")
    def _check(self) -> ConfigValueParams:
        if self.op in ("regex", "not_regex"):
            import re

            for v in self.value if isinstance(self.value, list) else [self.value]:
                re.compile(str(v))
        return self


@register_probe
class ConfigValue(Probe[ConfigValueParams]):
    name = "config_value"
    Params = ConfigValueParams

    def run(self, env: Env, params: ConfigValueParams) -> Outcome:
        patterns = params.path if isinstance(params.path, list) else [params.path]
        files = confparse.expand(env, patterns)
        existing = [f for f in files if env.read_text(f) is not None]
        first_file = existing[0] if existing else patterns[0]
        if not existing and params.missing != "default":
            return if_missing(params.missing, f"{', '.join(patterns)} does not exist", patterns[0])

        found = self._lookup(env, params, existing)
        want = describe(params.op, params.value)
        if found is None:
            if params.default is None:
                return Outcome(
                    params.absent, file=first_file, message=f"{params.key} is not set (expected {want})"
                )
            value = str(params.default)
            where: dict[str, str | int | None] = {"file": first_file}
            origin = f"{params.key} is not set; the default {value!r} applies"
        else:
            value = found.value
            where = {"file": found.file, "line": found.line}
            origin = f"{params.key} is {value!r}"
        try:
            ok = compare(value, params.op, params.value, kind=params.type, ci=params.ignore_case)
        except BadValue as exc:
            return Outcome.bad(f"{origin}: {exc}", value=value, **where)
        return Outcome.verdict(ok, f"{origin} (expected {want})", value=value, **where)

    @staticmethod
    def _lookup(env: Env, params: ConfigValueParams, files: list[str]) -> confparse.Setting | None:
        if params.format == "sshd":
            key = params.key.lower()
            precedence = params.precedence or "first"
            settings = (s for f in files for s in confparse.read_sshd(env, f))
        else:
            key = params.key
            precedence = params.precedence or "last"
            settings = (s for f in files for s in confparse.read_simple(env, f, params.format))
        hit: confparse.Setting | None = None
        for s in settings:
            if s.key != key or (params.section is not None and s.section != params.section):
                continue
            hit = s
            if precedence == "first":
                break
        return hit
