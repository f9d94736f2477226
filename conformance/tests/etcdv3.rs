//! The whole conformance suite against a real etcd (v3 API), one test per case.

mod support;

fn main() {
    support::run_suite("etcdv3", |server| {
        stolon_conformance::servers::EtcdFactory::new(server, stolon_store::StoreBackend::EtcdV3, support::TIMEOUT)
    });
}
