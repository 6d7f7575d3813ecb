"""CLI sub-commands, one module per area; each defines ``register(app)``."""
