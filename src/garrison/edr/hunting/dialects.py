"""The two SQL dialects a hunting query is rendered in: DuckDB's and ClickHouse's.

Only what differs lives here (function names, JSON access, time arithmetic, types); the translator
builds the same statement for both. Values are never spliced into the SQL: they are bound parameters
(``:p1``), which each engine receives typed (garrison.edr.events.duck / clickhouse compile them).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str
    types: dict[str, str]  # KQL type -> a nullable SQL type
    lower: str
    upper: str
    contains_ci: str  # {a} {b}: a contains b (case-insensitive)
    contains_cs: str
    starts_ci: str
    starts_cs: str
    ends_ci: str
    ends_cs: str
    regex: str  # {a} matches the RE2 pattern {b}
    regex_extract: str  # {a} {b} {n}: group n of the first match, '' if none
    regex_escape: str
    strlen: str
    substring: str  # {a} {start0} {n}
    indexof: str  # {a} {b}: 0-based, -1 if absent
    replace_regex: str  # {a} {b} {c}
    concat: str  # {args}
    count_if: str
    dcount: str
    any: str
    arg_max: str  # {x} {by}
    arg_min: str
    make_set: str  # {x}: a JSON array text
    make_list: str
    json_valid: str
    to_json_string: str  # {a}: a JSON string literal of a
    json_get: str  # {a} {path}: JSON text of the path, NULL if absent
    json_string: str  # {a}: the string a JSON value holds (unquoted), or its JSON text
    json_array_length: str
    json_array: str  # {args}: JSON text of an array of these JSON values
    split: str  # {a} {b}: JSON array text of the parts
    now: str
    add_micros: str  # {a} {n}
    diff_micros: str  # {a} {b}: a - b in microseconds
    epoch_micros: str  # {a}
    from_micros: str  # {a}
    int_div: str
    modulo: str
    to_long: str
    to_real: str
    to_string: str
    to_datetime: str
    unnest_json: str  # {a}: one row per element of a JSON array (a non-array is one row)
    base64_decode: str
    sha256: str
    url_decode: str
    url_encode: str
    row_number: str
    ipv4_number: str  # {a}: the address as a number, NULL if it is not an IPv4 address
    settings: str = ""


def _path_duckdb(keys: list[str | int]) -> str:
    out = "$"
    for k in keys:
        if isinstance(k, int):
            out += f"[{k}]" if k >= 0 else f"[#{k}]"
        else:
            out += '."' + k.replace('"', '\\"') + '"'
    return out


def path_duckdb(keys: list[str | int]) -> str:
    return _path_duckdb(keys)


DUCKDB = Dialect(
    name="duckdb",
    types={"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE", "bool": "BOOLEAN",
           "datetime": "TIMESTAMP", "timespan": "BIGINT", "dynamic": "VARCHAR", "null": "VARCHAR"},
    lower="lower({a})", upper="upper({a})",
    contains_ci="contains(lower({a}), lower({b}))", contains_cs="contains({a}, {b})",
    starts_ci="starts_with(lower({a}), lower({b}))", starts_cs="starts_with({a}, {b})",
    ends_ci="ends_with(lower({a}), lower({b}))", ends_cs="ends_with({a}, {b})",
    regex="regexp_matches({a}, {b})", regex_extract="regexp_extract({a}, {b}, {n})",
    regex_escape="regexp_escape({a})", strlen="length({a})",
    substring="substr({a}, ({start}) + 1, {n})", indexof="(strpos({a}, {b}) - 1)",
    replace_regex="regexp_replace({a}, {b}, {c}, 'g')", concat="concat({args})",
    count_if="count_if({a})", dcount="count(DISTINCT {a})", any="any_value({a})",
    arg_max="arg_max({x}, {by})", arg_min="arg_min({x}, {by})",
    make_set="CAST(to_json(list(DISTINCT {a}) FILTER (WHERE {a} IS NOT NULL)) AS VARCHAR)",
    make_list="CAST(to_json(list({a}) FILTER (WHERE {a} IS NOT NULL)) AS VARCHAR)",
    json_valid="json_valid({a})", to_json_string="CAST(to_json({a}) AS VARCHAR)",
    json_get="CAST(json_extract({a}, {path}) AS VARCHAR)",
    json_string="CASE WHEN json_valid({a}) THEN json_extract_string({a}, '$') ELSE {a} END",
    json_array_length="CAST(json_array_length({a}) AS BIGINT)",
    json_array="CAST(json_array({args}) AS VARCHAR)",
    split="CAST(to_json(string_split({a}, {b})) AS VARCHAR)",
    now="CAST(now() AS TIMESTAMP)",
    add_micros="({a} + to_microseconds(CAST({n} AS BIGINT)))",
    diff_micros="(epoch_us({a}) - epoch_us({b}))", epoch_micros="epoch_us({a})", from_micros="make_timestamp({a})",
    int_div="({a} // {b})", modulo="({a} % {b})", to_long="TRY_CAST({a} AS BIGINT)", to_real="TRY_CAST({a} AS DOUBLE)",
    to_string="CAST({a} AS VARCHAR)", to_datetime="TRY_CAST({a} AS TIMESTAMP)",
    unnest_json="unnest(CASE WHEN json_type({a}) = 'ARRAY' THEN CAST(json_extract({a}, '$[*]') AS VARCHAR[]) "
                "ELSE [{a}] END)",
    base64_decode="CAST(from_base64({a}) AS VARCHAR)", sha256="sha256({a})",
    url_decode="url_decode({a})", url_encode="url_encode({a})",
    row_number="row_number() OVER (PARTITION BY {keys} ORDER BY {keys})",
    ipv4_number="(CASE WHEN regexp_matches({a}, '^[0-9]{{1,3}}([.][0-9]{{1,3}}){{3}}$') THEN "
                "CAST(split_part({a}, '.', 1) AS BIGINT) * 16777216 + CAST(split_part({a}, '.', 2) AS BIGINT) * 65536 "
                "+ CAST(split_part({a}, '.', 3) AS BIGINT) * 256 + CAST(split_part({a}, '.', 4) AS BIGINT) END)",
)

CLICKHOUSE = Dialect(
    name="clickhouse",
    types={"string": "Nullable(String)", "long": "Nullable(Int64)", "int": "Nullable(Int32)",
           "real": "Nullable(Float64)", "bool": "Nullable(Bool)", "datetime": "Nullable(DateTime64(6, 'UTC'))",
           "timespan": "Nullable(Int64)", "dynamic": "Nullable(String)", "null": "Nullable(String)"},
    lower="lowerUTF8({a})", upper="upperUTF8({a})",
    contains_ci="(positionCaseInsensitiveUTF8({a}, {b}) > 0)", contains_cs="(position({a}, {b}) > 0)",
    starts_ci="startsWith(lowerUTF8({a}), lowerUTF8({b}))", starts_cs="startsWith({a}, {b})",
    ends_ci="endsWith(lowerUTF8({a}), lowerUTF8({b}))", ends_cs="endsWith({a}, {b})",
    regex="match({a}, {b})", regex_extract="regexpExtract({a}, {b}, {n})",
    regex_escape="regexpQuoteMeta({a})", strlen="toInt64(lengthUTF8({a}))",
    substring="substringUTF8({a}, ({start}) + 1, {n})", indexof="(toInt64(positionUTF8({a}, {b})) - 1)",
    replace_regex="replaceRegexpAll({a}, {b}, {c})", concat="concat({args})",
    count_if="toInt64(countIf({a}))", dcount="toInt64(uniqExact({a}))", any="any({a})",
    arg_max="argMax({x}, {by})", arg_min="argMin({x}, {by})",
    make_set="toJSONString(groupUniqArray({a}))", make_list="toJSONString(groupArray({a}))",
    json_valid="isValidJSON({a})", to_json_string="toJSONString({a})",
    json_get="nullIf(JSONExtractRaw({a}, {path}), '')",
    json_string="if(JSONType({a}) = 'String', JSONExtractString({a}), {a})",
    json_array_length="toInt64(JSONLength({a}))",
    json_array="concat('[', arrayStringConcat([{args}], ','), ']')",
    split="toJSONString(splitByString({b}, {a}))",
    now="now64(6, 'UTC')",
    add_micros="({a} + toIntervalMicrosecond({n}))",
    diff_micros="dateDiff('microsecond', {b}, {a})", epoch_micros="toUnixTimestamp64Micro({a})",
    from_micros="fromUnixTimestamp64Micro(toInt64({a}), 'UTC')",
    int_div="intDiv({a}, {b})", modulo="modulo({a}, {b})", to_long="toInt64OrNull(toString({a}))", to_real="toFloat64OrNull(toString({a}))",
    to_string="toString({a})", to_datetime="parseDateTime64BestEffortOrNull(toString({a}), 6, 'UTC')",
    unnest_json="arrayJoin(if(JSONType(ifNull({a}, 'null')) = 'Array', JSONExtractArrayRaw(ifNull({a}, '[]')), "
                "[ifNull({a}, 'null')]))",
    base64_decode="tryBase64Decode({a})", sha256="lower(hex(SHA256({a})))",
    url_decode="decodeURLComponent({a})", url_encode="encodeURLComponent({a})",
    row_number="row_number() OVER (PARTITION BY {keys})",
    ipv4_number="toInt64(IPv4StringToNumOrNull({a}))",
    settings=" SETTINGS join_use_nulls = 1, prefer_column_name_to_alias = 1",
)

DIALECTS = {d.name: d for d in (DUCKDB, CLICKHOUSE)}
