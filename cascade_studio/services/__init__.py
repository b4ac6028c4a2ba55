"""Async and file I/O without Qt: clients, secrets, catalogs, settings, runners."""
