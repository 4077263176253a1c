//! clouds.yaml, secure.yaml and OS_* variables → one typed [`CloudConfig`], as openstacksdk resolves
//! them (`openstack/config/loader.py`, `cloud_region.py`; keystoneauth's plugin loaders).
//!
//! Pure: the environment and the filesystem roots come in an [`Env`], nothing talks to Keystone, and
//! nothing is logged (warnings come back in [`CloudConfig::warnings`]; see
//! [`CloudConfig::log_warnings`]). [`Auth`] is what a Keystone client turns into the
//! `POST /v3/auth/tokens` body.
//!
//! The rules, in openstacksdk's order: the first clouds file found is used, never merged with others
//! (`OS_CLIENT_CONFIG_FILE` first, then cwd, the XDG user dir, `~/.config/openstack`, the XDG site
//! dir, `/etc/openstack`; `.yaml`, `.yml`, `.json` in each); the first secure file is deep-merged over
//! it; OS_* variables form a separate cloud (`envvars`, or `OS_CLOUD_NAME`) and are never laid over a
//! named one; the cloud is the one asked for, else `OS_CLOUD`, else the `envvars` cloud, else the
//! only one. Then defaults, region, the `magic_fixes` renames, the plugin's options moved into
//! `auth:`, keystoneauth's checks and the TLS rules.
//!
//! Where Stinger departs from openstacksdk, on purpose:
//! - An unreadable or unparsable clouds/secure file is an error naming it. openstacksdk skips it and
//!   silently uses the next file in the search path, which may hold another cloud's credentials.
//! - Only `password`, `v3password` and `v3applicationcredential`, only Keystone v3
//!   (`identity_api_version` 3 or unset), only project scope (domain, trust and system scopes are
//!   errors; no project is a warning), and no vendor profiles (`profile:` is a warning).
//! - A `verify` string that reads as a boolean (`OS_VERIFY=false`) is an error: openstacksdk would
//!   pass it to requests as a CA bundle path. Any other `verify` string is used as that path.
//! - No selection at all (several clouds, none named) is an error up front; openstacksdk builds an
//!   empty cloud that then fails on the missing `auth_url`.
//! - YAML is read as YAML 1.2 (`serde_norway`): unquoted `yes`/`no`/`on`/`off` are strings, not the
//!   booleans PyYAML makes of them. `insecure: yes` thus leaves verification on (with a warning) and
//!   `verify: no` is the error above: both fail safe.
//!
//! Kept as openstacksdk has them, though easy to trip on: `OS_REGION_NAME` only feeds the `envvars`
//! cloud (pass `region` to [`load`] for a file cloud); a file cloud named `envvars` is always a clash;
//! `auth_plugin` always loses to the default `auth_type`. And `auth_url` need not end in `/v3` for the
//! v3 plugins: current keystoneauth posts to `<auth_url>/v3/auth/tokens` when it does not (see
//! [`Auth::v3_token_url`]); the generic `password` plugin discovers the version instead.

mod auth;
mod error;
mod files;
mod resolve;
#[cfg(test)]
mod tests;

pub use auth::{AppCredRef, Auth, AuthType, DomainRef, ProjectScope, Secret, UserRef};
pub use error::Error;

use files::{Map, Node};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The parts of the process environment openstacksdk reads. Tests build one by hand.
#[derive(Clone)]
pub struct Env {
    /// The OS_* variables (others are ignored).
    pub vars: BTreeMap<String, String>,
    /// The working directory: searched first, and the base of relative OS_CLIENT_*_FILE paths.
    pub cwd: PathBuf,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// `$XDG_CONFIG_HOME`.
    pub xdg_config_home: Option<PathBuf>,
    /// `$XDG_CONFIG_DIRS` (platformdirs' site config dirs; default `<etc>/xdg`).
    pub xdg_config_dirs: Option<String>,
    /// `$SNAP_REAL_HOME`, which replaces `$HOME` for `~/.config/openstack` under snap.
    pub snap_real_home: Option<PathBuf>,
    /// `/etc`; tests point it at a temporary directory.
    pub etc: PathBuf,
}

impl Env {
    /// The real environment (non-UTF-8 variables are skipped).
    pub fn from_process() -> Env {
        let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            vars: std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .filter(|(k, _)| k.starts_with("OS_"))
                .collect(),
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: var("HOME").map(PathBuf::from),
            xdg_config_home: var("XDG_CONFIG_HOME").map(PathBuf::from),
            xdg_config_dirs: var("XDG_CONFIG_DIRS").and_then(|v| v.into_string().ok()),
            snap_real_home: var("SNAP_REAL_HOME").map(PathBuf::from),
            etc: PathBuf::from("/etc"),
        }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.vars
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }
}

impl std::fmt::Debug for Env {
    // By hand: variable names only, OS_PASSWORD's value must not be printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("vars", &self.vars.keys().collect::<Vec<_>>())
            .field("cwd", &self.cwd)
            .field("home", &self.home)
            .field("xdg_config_home", &self.xdg_config_home)
            .field("xdg_config_dirs", &self.xdg_config_dirs)
            .field("snap_real_home", &self.snap_real_home)
            .field("etc", &self.etc)
            .finish()
    }
}

/// Which endpoints of the service catalog to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interface {
    Public,
    Internal,
    Admin,
}

impl Interface {
    /// `public`, `internal`, `admin`; also the old `publicURL`-style spelling.
    pub fn parse(s: &str) -> Option<Interface> {
        Some(match s.strip_suffix("URL").unwrap_or(s) {
            "public" => Interface::Public,
            "internal" => Interface::Internal,
            "admin" => Interface::Admin,
            _ => return None,
        })
    }

    /// As in the catalog's `interface` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Public => "public",
            Interface::Internal => "internal",
            Interface::Admin => "admin",
        }
    }
}

/// Where a cloud's settings came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// clouds.yaml (or .yml/.json) and the secure file merged over it; either may be absent.
    Files {
        clouds: Option<PathBuf>,
        secure: Option<PathBuf>,
    },
    /// The cloud built from OS_* variables.
    Environment,
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigSource::Files { clouds, secure } => {
                let files: Vec<String> = [clouds, secure]
                    .into_iter()
                    .flatten()
                    .map(|p| p.display().to_string())
                    .collect();
                f.write_str(&files.join(" + "))
            }
            ConfigSource::Environment => f.write_str("OS_* environment variables"),
        }
    }
}

/// One cloud, resolved: everything a Keystone client and the service clients need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudConfig {
    /// The cloud's name (`envvars`, or `OS_CLOUD_NAME`, for the environment's cloud).
    pub name: String,
    pub source: ConfigSource,
    pub auth_type: AuthType,
    pub auth: Auth,
    /// The region chosen; `None` when the cloud lists none and none was asked for.
    pub region: Option<String>,
    /// `interface` (default public).
    pub interface: Interface,
    /// `<service_type>_interface` overrides, e.g. `compute` → internal.
    pub service_interfaces: BTreeMap<String, Interface>,
    /// Verify the server's TLS certificate (`verify`, default true; `insecure: true` turns it off).
    pub verify: bool,
    /// CA bundle to verify with; only ever `Some` when `verify` is true.
    pub cacert: Option<PathBuf>,
    /// Client certificate.
    pub cert: Option<PathBuf>,
    /// The client certificate's key; only with `cert`.
    pub key: Option<PathBuf>,
    /// `identity_api_version` as written (always 3.x when set).
    pub identity_api_version: Option<String>,
    /// Things that work but are probably not what was meant; log them (no secrets in them).
    pub warnings: Vec<String>,
}

impl CloudConfig {
    /// The interface for one service type (`compute`, `network`, `identity`, ...).
    pub fn interface_for(&self, service_type: &str) -> Interface {
        let key = service_type.replace('-', "_");
        self.service_interfaces
            .get(&key)
            .copied()
            .unwrap_or(self.interface)
    }

    /// Each warning as a `tracing` warning.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!(cloud = %self.name, source = %self.source, "{warning}");
        }
    }
}

/// The cloud `cloud` names (else `OS_CLOUD`, else the `envvars` cloud, else the only cloud), in
/// region `region` (else its first).
pub fn load(env: &Env, cloud: Option<&str>, region: Option<&str>) -> Result<CloudConfig, Error> {
    Clouds::discover(env)?.get(cloud, region)
}

/// Several clouds at once, each in its first region, every failure reported. `names` empty: every
/// cloud there is (files and environment), sorted by name; repeated names count once.
pub fn load_all(env: &Env, names: &[String]) -> Result<Vec<CloudConfig>, Error> {
    let clouds = Clouds::discover(env)?;
    let names: Vec<String> = if names.is_empty() {
        let all: Vec<String> = clouds.clouds.keys().cloned().collect();
        if all.is_empty() {
            return Err(clouds.nothing_found());
        }
        all
    } else {
        let mut seen = Vec::new();
        for n in names {
            if !seen.contains(n) {
                seen.push(n.clone());
            }
        }
        seen
    };
    let mut configs = Vec::new();
    let mut errors = Vec::new();
    for name in &names {
        match clouds.get(Some(name), None) {
            Ok(config) => configs.push(config),
            Err(e) => errors.push(e),
        }
    }
    match errors.pop() {
        None => Ok(configs),
        Some(only) if errors.is_empty() => Err(only),
        Some(last) => {
            errors.push(last);
            Err(Error::Several { errors })
        }
    }
}

/// Every cloud known, before any is resolved: openstacksdk's `OpenStackConfig.__init__`.
struct Clouds {
    clouds: Map,
    clouds_path: Option<PathBuf>,
    secure_path: Option<PathBuf>,
    /// The name of the environment's cloud, and whether there is one.
    envvar_key: String,
    has_env_cloud: bool,
    /// `OS_CLOUD`, else the environment's cloud, else the only cloud.
    default: Option<String>,
    searched: Vec<PathBuf>,
    warnings: Vec<String>,
}

/// Variables that select or locate a cloud and do not, alone, make an `envvars` cloud.
const SELECTORS: [&str; 5] = [
    "OS_CLOUD",
    "OS_REGION_NAME",
    "OS_CLIENT_CONFIG_FILE",
    "OS_CLIENT_SECURE_FILE",
    "OS_CLOUD_NAME",
];

impl Clouds {
    fn discover(env: &Env) -> Result<Clouds, Error> {
        let clouds_files = files::candidates(env, "clouds", "OS_CLIENT_CONFIG_FILE");
        let secure_files = files::candidates(env, "secure", "OS_CLIENT_SECURE_FILE");
        let found = files::load_first(&clouds_files)?;
        let secure = files::load_first(&secure_files)?;
        let mut warnings = Vec::new();
        let mut doc = Map::new();
        for f in found.iter().chain(secure.iter()) {
            match &f.doc {
                None => warnings.push(format!("{} is empty", f.path.display())),
                Some(d) if !d.contains_key("clouds") => {
                    warnings.push(format!(
                        "{} has no top-level `clouds` key",
                        f.path.display()
                    ));
                }
                Some(_) => {}
            }
            files::merge(&mut doc, f.doc.clone().unwrap_or_default());
        }
        let clouds_path = found.map(|f| f.path);
        let secure_path = secure.map(|f| f.path);
        let mut clouds = match doc.remove("clouds") {
            None | Some(Node::Null) => Map::new(),
            Some(Node::Map(m)) => m,
            Some(_) => {
                return Err(Error::InvalidFile {
                    path: clouds_path
                        .clone()
                        .or(secure_path.clone())
                        .unwrap_or_default(),
                    reason: "`clouds` is not a mapping".into(),
                })
            }
        };

        let envvar_key = env.var("OS_CLOUD_NAME").unwrap_or("envvars").to_owned();
        if clouds.contains_key(&envvar_key) {
            return Err(Error::CloudNameClash {
                name: envvar_key,
                path: clouds_path.or(secure_path),
            });
        }
        let mut default = env.var("OS_CLOUD").map(str::to_owned);
        let env_cloud = env_cloud(env);
        let has_env_cloud = env_cloud.is_some();
        if let Some(cloud) = env_cloud {
            clouds.insert(envvar_key.clone(), Node::Map(cloud));
            default.get_or_insert_with(|| envvar_key.clone());
        }
        if default.is_none() && clouds.len() == 1 {
            default = clouds.keys().next().cloned();
        }
        let mut searched = clouds_files;
        searched.dedup();
        Ok(Clouds {
            clouds,
            clouds_path,
            secure_path,
            envvar_key,
            has_env_cloud,
            default,
            searched,
            warnings,
        })
    }

    fn origin(&self) -> String {
        let mut parts: Vec<String> = [&self.clouds_path, &self.secure_path]
            .into_iter()
            .flatten()
            .map(|p| p.display().to_string())
            .collect();
        if self.has_env_cloud {
            parts.push("the OS_* variables".into());
        }
        parts.join(" + ")
    }

    /// No clouds at all; openstacksdk would build an empty `defaults` cloud, which has no auth_url.
    fn nothing_found(&self) -> Error {
        match &self.clouds_path {
            Some(path) => Error::NoClouds { path: path.clone() },
            None => Error::NoConfig {
                searched: self.searched.clone(),
            },
        }
    }

    fn get(&self, cloud: Option<&str>, region: Option<&str>) -> Result<CloudConfig, Error> {
        if self.clouds.is_empty() {
            return Err(self.nothing_found());
        }
        let available = || self.clouds.keys().cloned().collect::<Vec<_>>();
        let Some(name) = cloud.filter(|c| !c.is_empty()).or(self.default.as_deref()) else {
            return Err(Error::NoCloudSelected {
                available: available(),
                origin: self.origin(),
            });
        };
        let Some(raw) = self.clouds.get(name) else {
            return Err(Error::CloudNotFound {
                name: name.to_owned(),
                available: available(),
                origin: self.origin(),
            });
        };
        let source = if self.has_env_cloud && name == self.envvar_key {
            ConfigSource::Environment
        } else {
            ConfigSource::Files {
                clouds: self.clouds_path.clone(),
                secure: self.secure_path.clone(),
            }
        };
        let ctx = resolve::Ctx {
            envvar_key: &self.envvar_key,
            source,
            warnings: &self.warnings,
        };
        resolve::resolve(name, raw, region, &ctx)
    }
}

/// openstacksdk's `_get_os_environ`: every `OS_FOO_BAR` (but `OS_TEST*`, `OS_STD*`, `OS_LOG*`) as key
/// `foo_bar`, if any variable other than the selectors is set.
fn env_cloud(env: &Env) -> Option<Map> {
    let vars: Vec<(&String, &String)> = env
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("OS_"))
        .filter(|(k, _)| {
            !["OS_TEST", "OS_STD", "OS_LOG"]
                .iter()
                .any(|p| k.starts_with(p))
        })
        .collect();
    if vars.iter().all(|(k, _)| SELECTORS.contains(&k.as_str())) {
        return None;
    }
    Some(
        vars.into_iter()
            .map(|(k, v)| {
                let key = k
                    .split_once('_')
                    .map_or("", |(_, rest)| rest)
                    .to_lowercase();
                (key, Node::Str(v.clone()))
            })
            .collect(),
    )
}
