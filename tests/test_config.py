"""Options from environment variables: one per option, checked, errors naming the variable."""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import pytest

from cdp_logging import Analytics, ConfigurationError, RulesError
from cdp_logging.config import VARIABLES, handler_from_environment, read_environment


def test_every_analytics_option_has_a_variable_with_a_description() -> None:
    options = set(inspect.signature(Analytics.__init__).parameters) - {"self", "transport"}
    by_option = {variable.option: variable for variable in VARIABLES}
    assert options <= set(by_option)
    for option in options:
        variable = by_option[option]
        assert variable.name == f"CDP_{option.upper()}" and variable.description


def test_values_are_read_by_the_kind_of_the_option() -> None:
    assert read_environment({
        "CDP_WRITE_KEY": " key ", "CDP_HOST": "http://127.0.0.1:9",
        "CDP_MAX_EVENTS_IN_BATCH": "50", "CDP_FLUSH_INTERVAL": "0.5", "CDP_GZIP": "Yes",
        "CDP_ENABLE": "on", "CDP_OVERFLOW": "wait", "CDP_LEVEL": "warning", "CDP_RULES": "r.toml",
        "CDP_ERROR_HANDLER": "logging:exception", "UNRELATED": "x",
    }) == {
        "write_key": "key", "host": "http://127.0.0.1:9", "max_events_in_batch": 50,
        "flush_interval": 0.5, "gzip": True, "enable": True, "overflow": "wait",
        "level": logging.WARNING, "rules": "r.toml", "error_handler": logging.exception,
    }


def test_unset_and_empty_variables_leave_the_defaults() -> None:
    assert read_environment({"CDP_WRITE_KEY": "k", "CDP_TIMEOUT": "", "CDP_GZIP": "  "}) == \
        {"write_key": "k"}


def test_without_sending_no_write_key_is_needed() -> None:
    handler = handler_from_environment({"CDP_ENABLE": "false"})
    try:
        assert handler.client.enable is False and handler.rules is None
    finally:
        handler.close()


@pytest.mark.parametrize("variable, value, expected", [
    ("CDP_MAX_EVENTS_IN_BATCH", "ten", "CDP_MAX_EVENTS_IN_BATCH='ten': must be a whole number"),
    ("CDP_FLUSH_INTERVAL", "soon", "CDP_FLUSH_INTERVAL='soon': must be a number"),
    ("CDP_GZIP", "maybe", "CDP_GZIP='maybe': must be true or false"),
    ("CDP_LEVEL", "LOUD", "CDP_LEVEL='LOUD': must be a level name"),
    ("CDP_ERROR_HANDLER", "no_such_module:report", "CDP_ERROR_HANDLER='no_such_module:report': "
                                                     "cannot import"),
    ("CDP_MAX_EVENTS_IN_BATCH", "0", "CDP_MAX_EVENTS_IN_BATCH='0': must be a whole number from 1 to 10000"),
    ("CDP_TIMEOUT", "-1", "CDP_TIMEOUT='-1': must be a number of seconds from 0.001 to 600"),
    ("CDP_HOST", "cdp.customer.io", "CDP_HOST='cdp.customer.io': must be an http(s) URL"),
    ("CDP_OVERFLOW", "block", "CDP_OVERFLOW='block': must be 'drop' or 'wait'"),
], ids=["integer", "number", "flag", "level", "function", "minimum", "positive", "url", "choice"])
def test_a_bad_value_is_reported_naming_its_variable_when_strict(variable: str, value: str,
                                                                 expected: str) -> None:
    # Under pytest with the plugin strictness is on: the warning becomes an error.
    with pytest.raises(ConfigurationError) as raised:
        handler_from_environment({"CDP_WRITE_KEY": "k", variable: value})
    assert str(raised.value).startswith(expected)


def test_a_required_write_key_that_is_missing_says_which_variable_to_set() -> None:
    assert read_environment({"CDP_RULES": "rules.toml"}) == {"rules": "rules.toml"}
    with pytest.raises(ConfigurationError, match="^CDP_WRITE_KEY is not set: set it to the write key"):
        read_environment({"CDP_RULES": "rules.toml", "CDP_REQUIRE_WRITE_KEY": "yes"})


def test_a_bad_rules_file_is_named_with_its_variable(tmp_path: Path) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text('[{"message": "Hi %s", "identify": {"user_id": "{args[1]}"}}]')
    with pytest.raises(RulesError) as raised:
        handler_from_environment({"CDP_WRITE_KEY": "k", "CDP_RULES": str(rules)})
    assert str(raised.value).startswith(f"CDP_RULES={rules}: rule 1 (message 'Hi %s'): identify.user_id")
    assert raised.value.rule == 1
