"""The webhook tests' fixtures (see harness.py)."""

from tests.webhooks.harness import _fresh_policy, stack  # noqa: F401
