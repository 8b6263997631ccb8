"""What the tests share: waiting on conditions, servers on 127.0.0.1, applications run in
subprocesses, and the fixtures of the handler's, legacy-rules', reliability and spool tests."""
