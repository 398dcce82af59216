//! The private dockerd fixture itself (tests/common/dockerd.rs): overlay2 where dockerd can
//! use it, vfs where it cannot.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::dockerd::{unmount_all, Dockerd, STORAGE_ENV};
use crate::common::{run, temp_dir, DockerClient};

/// An overlayfs mounted at `merged`, unmounted (with whatever dockerd stacked on it) on drop.
struct Overlay {
    merged: std::path::PathBuf,
}

impl Overlay {
    fn mount(dir: &Path) -> Overlay {
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir_all(dir.join(d)).unwrap();
        }
        let mut c = Command::new("mount");
        c.args(["-t", "overlay", "overlay", "-o"])
            .arg(format!(
                "lowerdir={},upperdir={},workdir={}",
                dir.join("lower").display(),
                dir.join("upper").display(),
                dir.join("work").display()
            ))
            .arg(dir.join("merged"));
        run(c, None, Duration::from_secs(10)).expect_success("mount an overlayfs (as root)");
        Overlay {
            merged: dir.join("merged"),
        }
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        unmount_all(&self.merged.join("data"));
        unmount_all(&self.merged);
    }
}

/// overlay2 cannot stack on an overlayfs: dockerd refuses it and exits, and the fixture
/// starts it again with vfs, which then stores images and runs docker commands.
#[test]
fn dockerd_falls_back_to_vfs_where_overlay2_cannot_run() {
    assert!(
        std::env::var_os(STORAGE_ENV).is_none(),
        "{STORAGE_ENV} is set: it turns the fallback off; unset it for this test"
    );
    let dir = temp_dir("rgovl-");
    let overlay = Overlay::mount(dir.path());
    {
        let dockerd = std::sync::Arc::new(Dockerd::start_with_data(&overlay.merged.join("data")));
        assert_eq!(dockerd.storage_driver(), "vfs");
        let docker = DockerClient::on(dockerd.clone());
        let info = docker.docker(&["info", "--format", "{{.Driver}}"]);
        assert_eq!(info.stdout.trim(), "vfs", "{info}");
        let image = docker.import_image();
        docker
            .docker(&["image", "inspect", &image])
            .expect_success("the imported image is stored under vfs");
    }
    drop(overlay);
}
