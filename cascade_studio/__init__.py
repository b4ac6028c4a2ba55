"""Cascade Studio: distil an expensive teacher LLM agent into cheaper students and serve a cascade."""

__version__ = "0.1.0"
APP_NAME = "Cascade Studio"
APP_ID = "cascade-studio"
