"""People: chat identities (one neutral type for every channel)."""
