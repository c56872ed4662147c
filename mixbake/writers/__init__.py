"""Shard writers: context managers that write a temporary and rename it into place when complete."""
