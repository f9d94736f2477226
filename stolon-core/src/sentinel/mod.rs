//! The sentinel: the pure cluster-view decision and the election loop around it.
