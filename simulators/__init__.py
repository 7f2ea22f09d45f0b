"""Simulated devices with scripted scenarios and ground truth: air stations, stacks (CEMS),
outfalls, construction dust and noise monitors and weigh-in-motion stations, published over
MQTT as JSON readings and HJ 212 frames (``devices`` models, ``scenarios`` scripts,
``publisher`` the simulator, ``cli`` the ``farsight simulate`` command)."""
