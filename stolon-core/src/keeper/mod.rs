//! The keeper: the pure plan from assigned DB spec and observed instance to actions, and its loop.
