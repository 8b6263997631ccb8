"""``CDPHandler``: the logging glue. Records with a payload become CDP calls."""

from __future__ import annotations

import difflib
import inspect
import logging
import sys
import threading
import weakref
from threading import get_ident
from typing import Any
from collections.abc import Iterable

from .client import Analytics
from .option_table import resolve_callable
from .secret import Secret
from .constants import CALL_TYPES
from .errors import InvalidEventError
from .mapping import PAYLOAD_KEYS, calls_from_record, has_payload
from .nested import calls_from_values, nested_values
from .route import send_call
from .structlog import watch_structlog
from .fast import fast_message
from .reporting import threads_in_report
from .rules import RuleMatch, RuleSet, RulesSource, load_rules
from .shutdown import closing_handler, flush_handler, track_handler


class CDPHandler(logging.Handler):
    """A logging handler that sends records carrying an analytics payload to CDP.

    Records whose ``extra`` holds ``track``/``identify``/``page``/``screen``/``group``/
    ``alias`` (a dict of the call's fields), or the short track form (``event`` plus other
    fields as properties), become calls; every other record is ignored at the cost of one
    set check. Options are those of :class:`cdp_logging.Analytics`, or ``client=`` an
    existing client to share one pipeline. The write key defaults to ``CDP_WRITE_KEY``.

    ``rules`` (a list of rules, or the path of a JSON or TOML file holding them; see
    :mod:`cdp_logging.rules`) turns records without a payload into calls too: the first rule
    a record matches by logger, level and message makes the call, and a record no rule
    matches costs a dictionary look-up or two more. Records with a payload are handled as
    without rules. A rule that cannot work is skipped with one WARNING (a misspelt key) or
    ERROR on the ``cdp_logging`` logger, and a rules file that cannot be read leaves the
    handler without rules, with one ERROR: the application starts. When strict (see
    :func:`cdp_logging.events.is_strict`: under pytest with the plugin, ``CDP_STRICT=true``)
    they raise :class:`cdp_logging.RulesError` here, when logging is configured.

    Example (dictConfig)::

        logging.config.dictConfig({
            "version": 1,
            "handlers": {"cdp": {"class": "cdp_logging.CDPHandler", "level": "INFO"}},
            "root": {"handlers": ["cdp"], "level": "INFO"},
        })
        logging.getLogger("shop").info(
            "added to cart",
            extra={"track": {"user_id": "42", "event": "Added", "properties": {"qty": 1}}},
        )
    """

    #: Read by the reporting module, which must not import this one, to keep its own warnings
    #: away from handlers that would send them (see reporting.SENDS_TO_CDP).
    _sends_to_cdp = True

    def __init__(self, level: int | str = logging.NOTSET, *, client: Analytics | None = None,
                 rules: RulesSource | None = None, **options: Any) -> None:
        # Everything that can fail runs before logging.Handler.__init__, which registers the
        # handler for logging.shutdown(): a handler whose configuration failed must not be
        # flushed and closed later, at exit or at the next dictConfig.
        if "write_key" in options:  # hidden before anything can raise, and in self._options
            options["write_key"] = Secret.of(options["write_key"])
        #: The mapping rules (a :class:`cdp_logging.RuleSet`), or None.
        self.rules: RuleSet | None = load_rules(rules)
        if client is not None:
            if options:
                raise TypeError(
                    "CDPHandler: give either client= or client options, not both "
                    f"(got {', '.join(sorted(options))})"
                )
            if not isinstance(client, Analytics):
                raise TypeError(f"CDPHandler option 'client' must be a cdp_logging.Analytics, got {client!r}")
            owns_client = False
        else:
            _check_option_names(options)
            options.update({option: resolve_callable(options[option], option)
                            for option in ("error_handler", "before_send") if option in options})
            client = Analytics(**options)
            owns_client = True
        try:
            super().__init__(level)
        except BaseException:
            if owns_client:
                client.close_and_flush(timeout=0)
            raise
        self.client = client
        self._owns_client = owns_client
        if owns_client:
            track_handler(self)
        if not self._installed_without_code:
            application_handlers.add(self)
        self._options = options
        self._reopen = False
        self._reopen_lock = threading.Lock()
        # Read for every record: an instance attribute is the quickest to read.
        self._fast_path = self._overrides_no_step
        watch_structlog(self)

    #: False in a subclass that overrides :meth:`emit`, :meth:`calls`, :meth:`send` or
    #: :meth:`filter`: its records then take every step, so the overrides see each of them.
    _overrides_no_step = True
    #: True for the handler ``cdp-logging run`` installs, which is not the application's.
    _installed_without_code = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._overrides_no_step = (
            cls.emit is CDPHandler.emit and cls.calls is CDPHandler.calls
            and cls.send is CDPHandler.send and cls.filter is logging.Handler.filter
        )

    def __repr__(self) -> str:
        return f"<CDPHandler ({logging.getLevelName(self.level)}) {self.client!r}>"

    # -- the hot path ---------------------------------------------------------------------

    def handle(self, record: logging.LogRecord) -> Any:
        """Check for a payload (or, with rules, a matching rule) before anything else; send
        without taking the handler lock (the queue has its own), so slow delivery can never
        hold up logging. Logging calls it; True when the record was taken.

        Example::

            record = logging.makeLogRecord({"track": {"user_id": "42", "event": "Signed Up"}})
            assert handler.handle(record)
        """
        attributes = record.__dict__
        matched = None
        if ("track" not in attributes and "identify" not in attributes and "event" not in attributes
                and "page" not in attributes and "screen" not in attributes
                and "group" not in attributes and "alias" not in attributes):
            # Most records: the seven payload keys (PAYLOAD_KEYS), looked up one by one:
            # cheaper than any set operation, which would first make a view of the keys.
            rules = self.rules
            if rules is not None:
                matched = rules.find(record)
            if matched is None and (
                    # Nor loguru's values under extra, nor structlog's event dict as the message
                    # (ProcessorFormatter.wrap_for_formatter's records carry _logger).
                    ("extra" not in attributes and "_logger" not in attributes) or nested_values(record) is None):
                return False
        if self._reopen:
            self._open_new_client()
        thread = get_ident()
        if thread in threads_in_report or thread in self.client.own_threads:
            # Logged by an error_handler or a callback: feeding it back could loop.
            return False
        if self._fast_path and not self.filters:
            # The first branches of the one route, for a handler whose steps are not overridden:
            # what emit() -> calls() -> send() would do, in fewer steps; anything else takes those.
            if matched is not None:
                if "extra" not in attributes and "_logger" not in attributes:  # else nested values win
                    self._send_matched(record, matched)
                    return True
            else:
                # A record with one call whose payload is a dict of the common fields (see
                # fast.fast_message): its message built in one step and handed to the client.
                if ("track" in attributes and "identify" not in attributes and "event" not in attributes
                        and "page" not in attributes and "screen" not in attributes
                        and "group" not in attributes and "alias" not in attributes):
                    call = "track"  # the commonest record of all, found without making a set
                else:
                    present = attributes.keys() & PAYLOAD_KEYS
                    call = present.pop() if len(present) == 1 else ""
                if call:
                    payload = attributes[call]
                    if "user_id" in attributes or "anonymous_id" in attributes or "context" in attributes:
                        payload = None  # values beside the call key fill it: see mapping.fill_unset
                    try:
                        message = fast_message(call, payload, record.created) if type(payload) is dict else None
                        if message is None:
                            self.emit(record)
                        else:
                            self.client.enqueue(message, _origin, record)
                    except Exception:
                        self.handleError(record)
                    return True
        result = self.filter(record)
        if isinstance(result, logging.LogRecord):
            record = result
        if result:
            self.emit(record)
        return result

    def _send_matched(self, record: logging.LogRecord, matched: RuleMatch) -> None:
        """A record a rule matched: the match :meth:`handle` found makes its call, and says
        where it came from if it is refused, rather than :meth:`calls` finding it again."""
        def origin() -> str:  # called only on a refusal
            return _origin(record, matched=matched)
        try:
            call, fields = matched.call(record)
            send_call(self.client, call, fields, origin)
        except InvalidEventError as err:
            self.client.count_invalid(err.with_origin(origin()))
        except Exception:
            self.handleError(record)

    def emit(self, record: logging.LogRecord) -> None:
        """Turn the record into calls and queue them; never raises into the application.

        Example (a subclass that also keeps a copy of each sent record)::

            class AuditedHandler(CDPHandler):
                def emit(self, record):
                    audit_log.append(record.getMessage())
                    super().emit(record)
        """
        try:
            for call, fields in self.calls(record):
                self.send(call, fields, record)
        except InvalidEventError as err:
            self.client.count_invalid(err.with_origin(_origin(record, self.rules)))
        except Exception:
            self.handleError(record)

    def calls(self, record: logging.LogRecord) -> Iterable[tuple[str, dict[str, Any]]]:
        """``(call, fields)`` for each call the record asks for: its payload in ``extra``,
        else what the first matching rule makes of it; override to add conventions.

        Example (records with ``extra={"signup": user}`` become identify calls)::

            class SignupHandler(CDPHandler):
                def calls(self, record):
                    if hasattr(record, "signup"):
                        return [("identify", {"user_id": record.signup.id,
                                              "traits": {"email": record.signup.email}})]
                    return super().calls(record)
        """
        if has_payload(record):
            return calls_from_record(record)
        nested = nested_values(record)
        if nested is not None:
            return calls_from_values(nested, record.created)
        if self.rules is None:
            return []
        return self.rules.calls(record)

    def send(self, call: str, fields: dict[str, Any], record: logging.LogRecord) -> None:
        """Build, check and queue one call; override to enrich or filter calls.

        Example (every call carries the deployment's region)::

            class RegionHandler(CDPHandler):
                def send(self, call, fields, record):
                    fields.setdefault("context", {})["region"] = "eu-west-1"
                    super().send(call, fields, record)
        """
        send_call(self.client, call, fields, lambda: _origin(record, self.rules))

    def handleError(self, record: logging.LogRecord) -> None:
        """Count and report an unforeseen failure in emit as an invalid event, then let
        logging report it as for any handler (a traceback on stderr while
        ``logging.raiseExceptions`` is true).

        Example (production: count and report, no traceback on stderr)::

            logging.raiseExceptions = False
        """
        cause = sys.exc_info()[1]
        error = InvalidEventError(
            next((call for call in CALL_TYPES if call in record.__dict__), "track"), None,
            f"could not be sent: {type(cause).__name__}: {cause}", origin=_origin(record),
        )
        error.__cause__ = cause
        self.client.count_invalid(error)
        super().handleError(record)

    # -- lifecycle ------------------------------------------------------------------------

    def flush(self) -> None:
        """Deliver what is queued, waiting at most the client's ``shutdown_timeout``.

        Inside a reconfiguration of logging it does not wait: the close that follows delivers.
        From ``logging.shutdown()``, it starts one deadline for the whole shutdown.

        Example::

            handler.flush()   # before a short-lived process ends, say
        """
        flush_handler(self, _reconfiguring_logging())

    def close(self) -> None:
        """Deliver what is queued and stop the worker (if this handler made the client).

        Bounded by ``shutdown_timeout``; safe to call twice. ``logging.shutdown()`` calls it at
        exit, and dictConfig and fileConfig when they replace the configuration.

        Example::

            logging.getLogger().removeHandler(handler)
            handler.close()
        """
        # A client logging.shutdown() began closing is waited for, by its one deadline.
        shutting_down = closing_handler(self, _reconfiguring_logging(), self._owns_client)
        try:
            if self._owns_client and (not self.client.closed or shutting_down):
                if _reconfiguring_logging():
                    # dictConfig closes every handler but leaves the ones on loggers it does
                    # not configure attached; like logging.FileHandler, such a handler opens
                    # anew when its next record arrives, instead of dropping events.
                    self._reopen = True
                    self._close_in_background()
                else:
                    self.client.close_and_flush()
        finally:
            super().close()

    def _open_new_client(self) -> None:
        """After a reconfiguration closed this handler's client: a fresh one, same options."""
        with self._reopen_lock:
            if self._reopen:
                self.client = Analytics(**self._options)
                self._reopen = False

    def _close_in_background(self) -> None:
        """Close the client on a thread of its own.

        dictConfig and fileConfig hold logging's module lock while they close the handlers
        they replace, and the worker may need that lock to log (urllib3 at DEBUG, say):
        waiting for it here would stall the reconfiguration for the whole timeout and then
        give up on the queue. The closing thread is not a daemon, so an interpreter that
        exits right after reconfiguring still delivers (within ``shutdown_timeout``).
        """
        closer = threading.Thread(
            target=self.client.close_and_flush, name=f"cdp-logging-closer-{id(self.client):x}"
        )
        try:
            closer.start()
        except RuntimeError:  # no new threads at interpreter exit (Python 3.12+)
            self.client.close_and_flush()


#: The handlers the application made (not ``cdp-logging run``'s): while there are any, the
#: one ``run`` installed leaves alone the records they take.
application_handlers: weakref.WeakSet[CDPHandler] = weakref.WeakSet()


def _reconfiguring_logging() -> bool:
    """True while this thread holds logging's module lock, as dictConfig and fileConfig do
    while they flush and close the handlers they replace."""
    is_owned = getattr(getattr(logging, "_lock", None), "_is_owned", None)
    return bool(is_owned is not None and is_owned())


def _origin(record: logging.LogRecord, rules: RuleSet | None = None, *, matched: RuleMatch | None = None) -> str:
    """Where a refused record came from: its logger and line, and the rule it matched
    (``matched``, else found again in ``rules``: only on the error path of an overridden step)."""
    origin = f"logger {record.name!r} at {record.pathname}:{record.lineno}"
    if matched is None and rules is not None and not has_payload(record):
        matched = rules.find(record)
    if matched is not None:
        origin += f", rule {matched.rule.number} ({matched.rule.describe()})"
    return origin


#: The options of :class:`Analytics`, which are the handler's options too.
_OPTIONS = tuple(
    name for name, parameter in inspect.signature(Analytics).parameters.items()
    if parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)
)


def _check_option_names(options: dict[str, Any]) -> None:
    unknown = sorted(set(options) - set(_OPTIONS))
    if not unknown:
        return
    guesses = difflib.get_close_matches(unknown[0], ("level", "client", "rules", *_OPTIONS), n=1)
    hint = f" (did you mean {guesses[0]!r}?)" if guesses else ""
    raise TypeError(
        f"CDPHandler got unknown option(s) {', '.join(map(repr, unknown))}{hint}. "
        f"Known options: level, client, rules, {', '.join(_OPTIONS)}."
    )
