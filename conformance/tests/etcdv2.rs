//! The whole conformance suite against a real etcd (v2 API, `--enable-v2=true`), one test per case.

#[allow(dead_code)] // the runner helpers are for the consul and kubernetes suites
mod support;

fn main() {
    support::run_suite("etcdv2", |server| {
        stolon_conformance::servers::EtcdFactory::new(server, stolon_store::StoreBackend::EtcdV2, support::TIMEOUT)
    });
}
