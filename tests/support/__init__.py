"""Helpers shared by every test level."""
