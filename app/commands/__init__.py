"""Commands that join packages (each package keeps its own single-package tools)."""
