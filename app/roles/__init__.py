"""Process roles: what each long-running ``farsight`` command starts, and how it stops."""
