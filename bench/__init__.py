"""Benchmarks of mall-connector against the bare stack; `python -m bench.run --out docs/performance.md`."""
