"""The delivery stage: the batcher (queue and worker), the transport and its retry policy, the
kept-alive HTTP connection, and the durable spool. Nothing here imports the logging front or the
client; modules are imported where they are used, so this package imports nothing by itself."""
