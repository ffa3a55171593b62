"""The contract test suite every channel adapter's test module subclasses."""
