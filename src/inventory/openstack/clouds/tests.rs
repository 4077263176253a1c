//! Tests of the clouds.yaml loader; each builds its files and variables in a temporary directory and
//! never reads the real home directory or environment.

mod env_forms;
mod fixtures;
mod fixups;
mod search;
mod secrets;
mod select;

use super::*;
use std::path::{Path, PathBuf};

/// A temporary root with `cwd/`, `home/` and `etc/`, and an [`Env`] pointing there.
pub(super) struct Sandbox {
    dir: tempfile::TempDir,
    pub(super) env: Env,
}

impl Sandbox {
    pub(super) fn new() -> Sandbox {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_owned();
        for d in ["cwd", "home", "etc"] {
            std::fs::create_dir_all(root.join(d)).expect("mkdir");
        }
        let env = Env {
            vars: BTreeMap::new(),
            cwd: root.join("cwd"),
            home: Some(root.join("home")),
            xdg_config_home: None,
            xdg_config_dirs: None,
            snap_real_home: None,
            etc: root.join("etc"),
        };
        Sandbox { dir, env }
    }

    pub(super) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `text` to `rel` (relative to the root), creating directories.
    pub(super) fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.root().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, text).expect("write");
        path
    }

    pub(super) fn set(&mut self, name: &str, value: &str) -> &mut Sandbox {
        self.env.vars.insert(name.to_owned(), value.to_owned());
        self
    }

    pub(super) fn load(&self, cloud: Option<&str>) -> Result<CloudConfig, Error> {
        load(&self.env, cloud, None)
    }

    pub(super) fn ok(&self, cloud: Option<&str>) -> CloudConfig {
        match self.load(cloud) {
            Ok(c) => c,
            Err(e) => panic!("load failed: {e}"),
        }
    }

    pub(super) fn err(&self, cloud: Option<&str>) -> Error {
        match self.load(cloud) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        }
    }
}

/// A password cloud by names, in `auth:`; `extra` is added to the cloud (indented by 4).
pub(super) fn cloud_yaml(name: &str, auth_url: &str, extra: &str) -> String {
    format!(
        "clouds:\n  {name}:\n    auth:\n      auth_url: {auth_url}\n      username: u\n      \
         password: p\n      user_domain_name: Default\n      project_name: proj\n      \
         project_domain_name: Default\n{extra}"
    )
}

pub(super) fn name_in(domain: &str) -> DomainRef {
    DomainRef::Name(domain.to_owned())
}

pub(super) fn auth_url(c: &CloudConfig) -> &str {
    c.auth.auth_url()
}
