"""What the shop adapters share: the config section bases, the feed source (file or http(s) URL) and
the feed limits. (The outbox, adapters/generic_csv/outbox.py, and the table readers in
adapters/generic_csv/records.py are shared too and are to move here.)"""
