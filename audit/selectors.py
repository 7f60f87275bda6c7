"""Reads of the audit app (keyword-only, typed, named <entity>_<action>)."""
