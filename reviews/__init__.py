"""Worklist, reading sessions, decisions, labelled feedback and consensus projects."""
