//! The proxy: the pure route decision and the connection forwarding that fences old masters.
