"""Fearless: the library behind the release flows."""
