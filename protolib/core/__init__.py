"""Foundations: configuration and profiles, the cache, data, models, training, features."""
