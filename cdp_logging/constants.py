"""Numbers and names that come from the Customer.io Data Pipelines API, named once.

Sources: Customer.io's Node.js source library documentation (batching section: "a maximum of
500KB per batch request and 32KB per call"; EU region host) and the API's OpenAPI description.
"""

from __future__ import annotations

#: The US data center; the Node library's default ``host``.
DEFAULT_HOST = "https://cdp.customer.io"
#: The EU data center ("If you're in our EU region, set the host parameter to ...").
EU_HOST = "https://cdp-eu.customer.io"
#: The batch endpoint, relative to the host (OpenAPI: ``POST /v1/batch``).
BATCH_PATH = "/v1/batch"

#: Largest encoded message the API accepts ("32KB per call"; the Node library counts 32 * 1024).
MAX_MESSAGE_BYTES = 32 * 1024
#: Largest request body ("500KB per batch request"); read as decimal kilobytes so that either
#: reading of "KB" is respected.
MAX_BATCH_BYTES = 500_000

#: Environment variables read when an option is not given.
ENV_WRITE_KEY = "CDP_WRITE_KEY"
ENV_HOST = "CDP_HOST"
#: false turns every client off (sending nothing), whatever the code says.
ENV_ENABLE = "CDP_ENABLE"
#: The rules file and the lowest level considered, in zero-code use.
ENV_RULES = "CDP_RULES"
ENV_LEVEL = "CDP_LEVEL"
#: true makes the cdp_logging.events helpers raise for a bad payload.
ENV_STRICT = "CDP_STRICT"
#: true makes a missing write key an error instead of a warning.
ENV_REQUIRE_WRITE_KEY = "CDP_REQUIRE_WRITE_KEY"
#: How environment variables say yes and no.
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")

#: The six calls of the API, in the order the docs present them.
CALL_TYPES = ("identify", "track", "page", "screen", "group", "alias")
