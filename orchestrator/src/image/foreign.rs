//! The image of a node that is not ours (a testnet file's `node:` section):
//! the image it names (pulled where missing), or one assembled from Debian
//! packages: built on the pulled Debian base where a registry answers, else
//! with `mmdebstrap` + `docker import` from the host's apt sources. Cached by
//! a tag derived from the package list.

use std::collections::BTreeMap;

use super::{debootstrap_import, short_hash, tar_of, ImageError, ONLINE_BASE, PULL_TIMEOUT};
use crate::engine::{Engine, LABEL_ROLE};
use crate::nodespec::NodeSpec;

/// The tag of the image assembled from `packages`.
pub fn package_tag(packages: &[String]) -> String {
    format!(
        "testnet-pkg:bookworm-{}",
        short_hash(&[packages.join(",").as_bytes()])
    )
}

fn online_dockerfile(packages: &[String]) -> String {
    format!(
        "FROM {ONLINE_BASE}\nRUN apt-get update && DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends {} && rm -rf /var/lib/apt/lists/*\n",
        packages.join(" ")
    )
}

/// Makes sure the foreign node's image exists; returns its reference.
pub async fn ensure_foreign<E: Engine>(
    engine: &E,
    spec: &NodeSpec,
    progress: &impl Fn(&str),
) -> Result<String, ImageError> {
    if let Some(reference) = &spec.image {
        if engine.image_exists(reference).await? {
            progress(&format!("node image {reference}: present"));
            return Ok(reference.clone());
        }
        progress(&format!("node image {reference}: pulling..."));
        return match tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(reference)).await {
            Ok(Ok(())) => Ok(reference.clone()),
            failed => Err(ImageError::Foreign {
                reference: reference.clone(),
                why: match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => format!("no answer within {PULL_TIMEOUT:?}"),
                },
            }),
        };
    }
    let tag = package_tag(&spec.packages);
    if engine.image_exists(&tag).await? {
        progress(&format!(
            "node image {tag} ({}): cached",
            spec.packages.join(", ")
        ));
        return Ok(tag);
    }
    let labels = BTreeMap::from([(LABEL_ROLE.to_owned(), "node-image".to_owned())]);
    let pulled = tokio::time::timeout(PULL_TIMEOUT, engine.pull_image(ONLINE_BASE)).await;
    match pulled {
        Ok(Ok(())) => {
            let dockerfile = online_dockerfile(&spec.packages);
            let context = tar_of(&[("Dockerfile", dockerfile.as_bytes(), 0o644)]);
            engine.build_image(&tag, context, labels).await?;
            progress(&format!(
                "node image {tag}: built on {ONLINE_BASE} (online path)"
            ));
        }
        failed => {
            let why = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {PULL_TIMEOUT:?}"),
            };
            progress(&format!(
                "node image {tag}: no registry; assembling {} with mmdebstrap (once)...",
                spec.packages.join(", ")
            ));
            let include = format!("--include={}", spec.packages.join(","));
            let args = ["--variant=minbase", include.as_str(), "bookworm"];
            debootstrap_import(engine, &tag, &args, &[], why).await?;
            progress(&format!("node image {tag}: imported (offline path)"));
        }
    }
    Ok(tag)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fake::FakeEngine;

    fn spec(image: Option<&str>, packages: &[&str]) -> NodeSpec {
        NodeSpec {
            image: image.map(str::to_owned),
            packages: packages.iter().map(|p| p.to_string()).collect(),
            command: vec!["etcd".into()],
            peer_format: "{ip}".into(),
            peer_separator: ",".into(),
            env: Default::default(),
            ports: crate::nodespec::NodePorts {
                p2p: 2380,
                api: None,
                metrics: None,
            },
            metrics_path: "/metrics".into(),
            ready: None,
            data_dir: None,
            metrics: Default::default(),
            faketime: false,
        }
    }

    #[tokio::test]
    async fn a_named_image_is_used_or_pulled_and_a_failed_pull_says_what_to_do() {
        let engine = FakeEngine::new();
        engine.state().images.insert("etcd:here".into());
        let got = ensure_foreign(&engine, &spec(Some("etcd:here"), &[]), &|_| {}).await;
        assert_eq!(got.unwrap(), "etcd:here");
        engine.state().pull_fails = true;
        let err = ensure_foreign(&engine, &spec(Some("etcd:gone"), &[]), &|_| {})
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("etcd:gone") && err.contains("packages"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn packages_build_online_when_a_registry_answers_and_are_cached() {
        let engine = FakeEngine::new();
        let s = spec(None, &["etcd-server", "etcd-client"]);
        let tag = ensure_foreign(&engine, &s, &|_| {}).await.unwrap();
        assert_eq!(tag, package_tag(&s.packages));
        assert!(engine.image_exists(&tag).await.unwrap());
        assert!(online_dockerfile(&s.packages).contains("etcd-server etcd-client"));
        let said = std::sync::Mutex::new(Vec::new());
        let again = ensure_foreign(&engine, &s, &|l| said.lock().unwrap().push(l.to_owned()))
            .await
            .unwrap();
        assert_eq!(again, tag);
        assert!(said.lock().unwrap()[0].contains("cached"));
    }
}
