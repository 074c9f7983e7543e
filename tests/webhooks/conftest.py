"""The webhook tests' fixtures (see harness.py)."""

from tests.webhooks.harness import stack  # noqa: F401
