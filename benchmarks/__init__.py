"""Benchmarks for cdp_logging against logging baselines and the official CDP client."""
