//! A tiny OCI image layout written from scratch, as a source for `skopeo copy`
//! (so the skopeo tests need no docker daemon).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use super::run;

fn sha256_hex(data: &[u8]) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, data);
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn put_blob(dir: &Path, data: &[u8]) -> (String, usize) {
    let hex = sha256_hex(data);
    let path = dir.join("blobs/sha256").join(&hex);
    std::fs::write(&path, data).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    (format!("sha256:{hex}"), data.len())
}

/// Writes a one-layer image whose only file holds `content` into a new OCI
/// layout under `parent`; returns the skopeo reference `oci:DIR:latest`.
#[track_caller]
pub fn image_layout(parent: &Path, content: &str) -> String {
    let dir: PathBuf = parent.join(super::unique("oci"));
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(dir.join("blobs/sha256")).expect("mkdir blobs");
    std::fs::create_dir_all(&rootfs).expect("mkdir rootfs");
    std::fs::write(rootfs.join("e2e-file"), content).expect("write layer file");
    let tar = dir.join("layer.tar");
    let mut c = Command::new("tar");
    c.arg("-C").arg(&rootfs).arg("-cf").arg(&tar).arg(".");
    run(c, None, Duration::from_secs(30)).expect_success("tar the layer");
    let layer = std::fs::read(&tar).expect("read layer tar");
    std::fs::remove_file(&tar).expect("remove layer tar");
    std::fs::remove_dir_all(&rootfs).expect("remove rootfs");

    let (layer_digest, layer_size) = put_blob(&dir, &layer);
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let (config_digest, config_size) = put_blob(&dir, config.to_string().as_bytes());
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config_size,
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer_size,
        }],
    });
    let (manifest_digest, manifest_size) = put_blob(&dir, manifest.to_string().as_bytes());
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest_size,
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(dir.join("index.json"), index.to_string()).expect("write index.json");
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#)
        .expect("write oci-layout");
    format!("oci:{}:latest", dir.display())
}
