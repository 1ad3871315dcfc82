"""What the shop adapters share: the config section bases, the feed source (file or http(s) URL) and
the feed limits, the outbox (adapters/shared/outbox.py: files with the configured mode and group).
(The table readers in adapters/generic_csv/records.py are shared too and are to move here.)"""
