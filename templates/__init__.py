"""Jinja2 templates of the HTML reports (package data)."""
