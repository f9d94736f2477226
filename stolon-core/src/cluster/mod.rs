//! The stolon cluster data model (placeholder: being written).
