//! Loom models of the evbus lifecycle protocol; see `tests/`.
