"""Metric names out of PromQL expressions, and out of a ``/metrics`` page, for the checks that
every metric a dashboard or an alert queries is one the worker exports."""

from __future__ import annotations

import re

#: PromQL functions, aggregations and keywords: identifiers that are not metric names.
_NOT_METRICS = frozenset(
    [
        "abs",
        "absent",
        "absent_over_time",
        "avg",
        "avg_over_time",
        "bool",
        "bottomk",
        "ceil",
        "changes",
        "clamp",
        "clamp_max",
        "clamp_min",
        "count",
        "count_over_time",
        "count_values",
        "day_of_month",
        "day_of_week",
        "days_in_month",
        "delta",
        "deriv",
        "exp",
        "floor",
        "group",
        "group_left",
        "group_right",
        "histogram_quantile",
        "holt_winters",
        "hour",
        "idelta",
        "increase",
        "irate",
        "label_join",
        "label_replace",
        "last_over_time",
        "ln",
        "log10",
        "log2",
        "max",
        "max_over_time",
        "min",
        "min_over_time",
        "minute",
        "month",
        "offset",
        "predict_linear",
        "quantile",
        "quantile_over_time",
        "rate",
        "resets",
        "round",
        "scalar",
        "sgn",
        "sort",
        "sort_desc",
        "sqrt",
        "stddev",
        "stddev_over_time",
        "stdvar",
        "stdvar_over_time",
        "sum",
        "sum_over_time",
        "time",
        "timestamp",
        "topk",
        "vector",
        "year",
        "and",
        "or",
        "unless",
        "by",
        "without",
        "on",
        "ignoring",
        "inf",
        "nan",
        "label_values",
    ]
)

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^}]*\}")
_RANGES = re.compile(r"\[[^\]]*\]")
_LABEL_LISTS = re.compile(
    r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", re.IGNORECASE
)
_VARIABLES = re.compile(r"\$\{?\w+\}?")
_IDENTIFIERS = re.compile(r"(?<![\w.])[a-zA-Z_:][a-zA-Z0-9_:]*")


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects (functions, keywords and labels left out)."""
    text = _STRINGS.sub(" ", expr)
    text = _VARIABLES.sub(" ", text)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    # A label_values(metric, label) query: the second argument is a label.
    text = re.sub(r"label_values\s*\(([^,)]*),[^)]*\)", r"\1", text)
    names = set()
    for match in _IDENTIFIERS.finditer(text):
        word = match.group(0)
        if word.lower() in _NOT_METRICS or re.fullmatch(r"\d+[smhdwy]?", word):
            continue
        names.add(word)
    return names


_HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")


def exported_names(exposition: str) -> set[str]:
    """Every series name a ``/metrics`` page can yield: the samples present, and for each family
    declared by ``# TYPE`` the names it yields (a labelled family may have no sample yet)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, family, kind = line.split(maxsplit=3)
            names.add(family)
            if kind in ("histogram", "summary"):
                names.update(family + suffix for suffix in _HISTOGRAM_SUFFIXES)
            if kind == "counter":
                names.add(family.removesuffix("_total") + "_created")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    return names


#: Series Prometheus makes itself for every target; not on any /metrics page.
SYNTHETIC = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})
