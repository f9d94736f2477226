//! The whole conformance suite against a real etcd (v3 API), one test per case.

#[allow(dead_code)] // the runner helpers are for the consul and kubernetes suites
mod support;

fn main() {
    support::run_suite("etcdv3", |server| {
        stolon_conformance::servers::EtcdFactory::new(server, stolon_store::StoreBackend::EtcdV3, support::TIMEOUT)
    });
}
