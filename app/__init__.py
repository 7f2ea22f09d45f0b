"""The composition root: the ``farsight`` CLI, the process roles and the demos.

The only package that joins the others: everything below it imports the kernel (``farsight``)
and the packages ARCHITECTURE.md allows, and ``app`` wires them together.
"""
