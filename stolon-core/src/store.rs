//! Typed access to the coordination store (written in the foundation issue; placeholder while the model lands).
