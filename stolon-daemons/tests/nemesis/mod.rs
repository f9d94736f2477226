//! The nemesis (issue 17): a stolon-rs cluster whose every component runs in its own network namespace,
//! a workload through the proxies, faults drawn from a seed (real partitions, one-way cuts, packet loss, slow
//! links, kills, pauses), and checkers that judge the recorded history.

pub mod checkers;
pub mod failsafe;
pub mod faults;
pub mod netns;
pub mod report;
pub mod rng;
pub mod run;
pub mod topology;
pub mod workload;

/// Results of the nemesis.
pub type R<T> = anyhow::Result<T>;
