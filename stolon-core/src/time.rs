//! RFC3339 timestamps (placeholder).
