"""The ostinato provider conformance suite (work in progress)."""
