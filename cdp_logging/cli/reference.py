"""docs/configuration.md, generated from the option table (:data:`cdp_logging.option_table.OPTIONS`):
``python -m cdp_logging.cli.reference > docs/configuration.md``. A test fails when the file and
the table differ."""

from __future__ import annotations

from ..option_table import CLIENT_OPTIONS, KINDS, OPTIONS, Option


def _table(options: tuple[Option, ...]) -> list[str]:
    lines = ["| Option | Variable | Type | Default | Range | What it does |",
             "| --- | --- | --- | --- | --- | --- |"]
    for option in options:
        variable = f"`{option.variable}`" if option.variable else "(code only)"
        kind = " or ".join(option.choices) if option.kind == "choice" else KINDS[option.kind]
        bounds = (f"{option.minimum} to {option.maximum}"
                  if option.minimum is not None else "")
        cells = [f"`{option.name}`", variable, kind, option.default_text, bounds, option.description]
        lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
    return lines


def markdown() -> str:
    """docs/configuration.md: the reference table of every option, generated from
    :data:`~cdp_logging.option_table.OPTIONS`,
    and where each option's value comes from.

    Example::

        pathlib.Path("docs/configuration.md").write_text(markdown())
    """
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from cdp_logging/option_table.py by "
        "`python -m cdp_logging.cli.reference > docs/configuration.md`: edit the table, not this file. -->",
        "",
        "Every option of `cdp_logging.Analytics` (and so of `CDPHandler`, which passes its options on, "
        "in code, `dictConfig` or an INI file) has an environment variable: `CDP_` and the option's "
        "name in capitals. Numbers must be finite and within the range shown, both ends included.",
        "",
        *_table(CLIENT_OPTIONS),
        "",
        "Three more variables: `CDP_RULES` and `CDP_LEVEL` configure the handler `cdp-logging run` "
        "installs; `CDP_STRICT` applies everywhere.",
        "",
        *_table(tuple(option for option in OPTIONS if option.scope != "client")),
    ]
    lines += _SOURCES_SECTION
    return "\n".join(lines) + "\n"


_SOURCES_SECTION = [
    "",
    "## Where each option's value comes from",
    "",
    "Wherever a client is made (`Analytics(...)` in code, `CDPHandler` in `dictConfig` or an INI "
    "file, or `cdp-logging run`), each option takes, first to last:",
    "",
    "1. the argument given in code (or the key in `dictConfig`);",
    "2. else its `CDP_*` variable, when set, not blank, and good;",
    "3. else the default in the table above.",
    "",
    "Two variables apply over code too: `CDP_ENABLE=false` turns every client off, and "
    "`CDP_REQUIRE_WRITE_KEY=true` makes a missing key an error for every client. A `None` "
    "`write_key` or `host` counts as not given.",
    "",
    "The client's `option_sources` maps each option to where its value came from "
    "(`\"code\"`, the variable's name, or `\"default\"`), and with the `cdp_logging` logger at "
    "DEBUG each client logs one line naming the options not at their default and their source "
    "(the write key is shown as `(set)`).",
    "",
    "```python",
    "import cdp_logging",
    "",
    "analytics = cdp_logging.Analytics(max_events_in_batch=50)",
    "print(analytics.option_sources[\"max_events_in_batch\"])   # code",
    "print(analytics.option_sources[\"write_key\"])             # CDP_WRITE_KEY, when it is set",
    "print(analytics.option_sources[\"flush_interval\"])        # CDP_FLUSH_INTERVAL if set, else default",
    "analytics.close()",
    "```",
    "",
    "## What a bad value does",
    "",
    "A bad value in the environment never stops the application. `CDP_FLUSH_INTERVAL=ten`, "
    "`CDP_HOST=127.0.0.1:8711` (no scheme) or `CDP_TIMEOUT=inf` is one WARNING on the "
    "`cdp_logging` logger, once per process tree, naming the variable, what is wrong and the "
    "default used instead:",
    "",
    "```text",
    "cdp-logging: CDP_FLUSH_INTERVAL='ten': must be a number of seconds from 0.001 to 3600; "
    "using the default, 10.0",
    "```",
    "",
    "With `CDP_STRICT=true` (and under pytest with cdp-logging's plugin) a bad value is an "
    "error instead: `cdp_logging.ConfigurationError` naming the variable, raised where the "
    "client is made; `cdp-logging run` then does not start the command. `cdp-logging check` "
    "always reports a bad value as an error.",
    "",
    "A bad value given in code raises `TypeError` or `ValueError` where the client is made, "
    "naming the option: a mistake in code is found the first time it runs.",
    "",
    "Every number is finite and in the range in the table: `inf`, `nan`, `1e12` seconds or a "
    "negative count are refused, from code or environment.",
    "",
    "## The warnings about the key and the host",
    "",
    "- Without a write key a client sends nothing and says so once per process tree: the "
    "processes it starts, and the workers a server such as `uvicorn --workers 2` starts side by "
    "side, do not say it again.",
    "- A key the API refuses is one line per batch saying which setting to check:",
    "",
    "```text",
    "cdp-logging: 1 event not delivered after 1 attempt: the API refused the write key (HTTP 401): "
    "check CDP_WRITE_KEY / write_key for this source; the API said: unauthorized; messageIds ...",
    "```",
    "",
    "- A region key (`pk_eu_...`) sent to the other region's host says how to fix it: drop "
    "`host` (and `CDP_HOST`) so the key's region is used, or set the key's region host.",
]


if __name__ == "__main__":  # python -m cdp_logging.cli.reference > docs/configuration.md
    import sys

    sys.stdout.write(markdown())
