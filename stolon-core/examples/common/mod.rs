//! Command-line parsing shared by the examples: the few store flags they need, with stolon's names.

use std::time::Duration;

use stolon_core::stolon_store::{Endpoint, StoreBackend, StoreConfig};

/// Reads `--store-backend`, `--store-endpoints`, `--cluster-name`, `--store-prefix` from `args`; the rest is
/// returned for the example's own flags. Prints usage and exits on bad input.
pub fn store_config(usage: &str) -> (StoreConfig, Vec<(String, String)>) {
    let mut args = std::env::args().skip(1);
    let (mut backend, mut endpoints, mut cluster, mut prefix) = (None, None, None, None);
    let mut rest = Vec::new();
    while let Some(flag) = args.next() {
        let Some(value) = args.next() else { die(usage, &format!("{flag} needs a value")) };
        match flag.as_str() {
            "--store-backend" => backend = Some(value),
            "--store-endpoints" => endpoints = Some(value),
            "--cluster-name" => cluster = Some(value),
            "--store-prefix" => prefix = Some(value),
            _ if flag.starts_with("--") => rest.push((flag, value)),
            _ => die(usage, &format!("unexpected argument {flag:?}")),
        }
    }
    let backend: StoreBackend =
        backend.as_deref().unwrap_or("etcdv3").parse().unwrap_or_else(|e| die(usage, &format!("--store-backend: {e}")));
    let Some(cluster) = cluster else { die(usage, "--cluster-name is required") };
    let mut config = StoreConfig::new(backend, cluster);
    if let Some(endpoints) = endpoints {
        config.endpoints = endpoints
            .split(',')
            .map(Endpoint::parse)
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| die(usage, &format!("--store-endpoints: {e}")));
    }
    if let Some(prefix) = prefix {
        config.prefix = prefix;
    }
    config.timeout = Duration::from_secs(5);
    (config, rest)
}

/// Prints the error and the usage on stderr and exits with status 2.
pub fn die(usage: &str, error: &str) -> ! {
    eprintln!("error: {error}\nusage: {usage}");
    std::process::exit(2)
}
