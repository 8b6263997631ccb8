"""loguru as the CDP front: a CDPSink added to loguru; bound and contextualized values fill the
fields each call leaves unset.

Run it with CDP_WRITE_KEY and CDP_HOST set (``cdp-logging collect`` starts a local collector).
"""

from __future__ import annotations

import sys

from loguru import logger

from cdp_logging.loguru import CDPSink

if __name__ == "__main__":
    logger.remove()
    logger.add(sys.stderr, level="INFO")
    logger.add(CDPSink(), level="INFO")          # write key and host from CDP_WRITE_KEY, CDP_HOST

    with logger.contextualize(user_id="019mr8mf4r"):   # once per request, say
        logger.bind(track={"event": "Added To Cart", "properties": {"sku": "shoe-42"}}).info("added to cart")
        logger.info("signed up", identify={"traits": {"plan": "pro"}})
        logger.info("an ordinary line: not sent")
    logger.bind(anonymous_id="visitor-7").info("viewed pricing", page={"name": "Pricing"})

    logger.remove()   # loguru stops the sink: what is queued is delivered
