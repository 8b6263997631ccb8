"""An application whose logging is its Customer.io Data Pipelines source: fileConfig.

The configuration is ``logging.ini`` beside this file; the write key comes from the
environment::

    CDP_WRITE_KEY=your-write-key python examples/fileconfig_app.py

What is queued is delivered at interpreter exit.
"""

import logging
import logging.config
from pathlib import Path

log = logging.getLogger("mobile")


def main() -> None:
    logging.config.fileConfig(Path(__file__).with_name("logging.ini"), disable_existing_loggers=False)

    log.info("opened the app", extra={"screen": {"anonymous_id": "anon-42", "name": "Home"}})
    log.info("logged in", extra={"alias": {"previous_id": "anon-42", "user_id": "019mr8mf4r"}})
    # camelCase, as in the API and the Node library, works as well as snake_case.
    log.info("profile", extra={"identify": {"userId": "019mr8mf4r", "traits": {"plan": "Free"}}})
    log.info("checkout", extra={"event": "Checkout Started", "userId": "019mr8mf4r", "items": 3})


if __name__ == "__main__":
    main()
