"""What the tests share (tests/README.md): the worlds (worlds.py, over adapters/shared/world.py), the
loopback sinks and the hand-moved clock (sinks.py), the MALL error table (errors.py)."""
