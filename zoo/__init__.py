"""zoo: a JAX architecture zoo written as pure functions, with one optax trainer."""
from zoo import models

__all__ = ["models"]
