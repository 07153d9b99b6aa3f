"""Measuring tools that ship with the project (gpu-check)."""
