//! Go-compatible durations (placeholder).
