//! The manifests of `examples/kubernetes/` are valid: every object is created with server-side dry-run.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, ensure};
use k8s_openapi::api::core::v1::Namespace;
use kube::Api;
use kube::api::{DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::{Scope, pinned_kind};
use stolon_conformance::servers::KubeFactory;

pub async fn dry_run(factory: Arc<KubeFactory>) -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/kubernetes");
    let admin = factory.admin().clone();
    // A namespace of their own: the harness's namespace already holds a Role named stolon.
    let ns = &format!("stolon-examples-{}", std::process::id());
    let namespace: Namespace = serde_json::from_value(serde_json::json!({ "metadata": { "name": ns } }))?;
    Api::<Namespace>::all(admin.clone()).create(&PostParams::default(), &namespace).await?;
    let mut kinds = BTreeSet::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
        let text = std::fs::read_to_string(path)?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).with_context(|| format!("parsing {}", path.display()))?;
        for doc in docs.into_iter().filter(|d| !d.is_null()) {
            let obj: DynamicObject = serde_json::from_value(doc).with_context(|| format!("{}", path.display()))?;
            let types =
                obj.types.clone().with_context(|| format!("{}: object without apiVersion/kind", path.display()))?;
            let gvk = GroupVersionKind::try_from(&types)?;
            let (resource, caps) = pinned_kind(&admin, &gvk).await.with_context(|| format!("discovering {gvk:?}"))?;
            let api: Api<DynamicObject> = match caps.scope {
                Scope::Namespaced => Api::namespaced_with(admin.clone(), ns, &resource),
                Scope::Cluster => Api::all_with(admin.clone(), &resource),
            };
            let params = PostParams { dry_run: true, ..Default::default() };
            let name = obj.metadata.name.clone().unwrap_or_default();
            api.create(&params, &obj)
                .await
                .with_context(|| format!("{}: dry-run create of {} {name}", path.display(), types.kind))?;
            kinds.insert(types.kind);
        }
    }
    for kind in ["StatefulSet", "Deployment", "Service", "Secret", "ServiceAccount", "Role", "RoleBinding"] {
        ensure!(kinds.contains(kind), "examples/kubernetes has no {kind} (found {kinds:?})");
    }
    Ok(())
}
