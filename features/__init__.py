"""The Feast repo, window feature definitions, the stream processor, point-in-time sets."""
