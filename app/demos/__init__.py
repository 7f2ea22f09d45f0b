"""Demos that run several roles together with simulated hardware."""
