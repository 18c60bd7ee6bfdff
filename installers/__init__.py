"""Bring a portal in line with the registry: add, update, delete stale, re-bind."""

from installers.sync import sync_registrations

__all__ = ["sync_registrations"]
