//! One cloud's settings → [`CloudConfig`]: openstacksdk's `get_one` (defaults, region choice,
//! `magic_fixes`, moving the plugin's options into `auth:`) and `get_requests_verify_args` (TLS).

use super::auth::{self, AuthType};
use super::files::{normalize, Map, Node};
use super::{CloudConfig, ConfigSource, Error, Interface};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What a cloud's resolution needs besides its own settings.
pub(super) struct Ctx<'a> {
    /// The `envvars` cloud's name (`OS_CLOUD_NAME`), which a `profile:` may not name.
    pub(super) envvar_key: &'a str,
    pub(super) source: ConfigSource,
    /// Warnings about the files, repeated on every cloud built from them.
    pub(super) warnings: &'a [String],
}

/// A cloud's settings: the top level and its `auth:` mapping, kept apart.
struct Draft {
    cloud: String,
    top: Map,
    auth: Map,
}

/// openstacksdk's `get_one(name, region_name=region)`.
pub(super) fn resolve(
    name: &str,
    raw: &Node,
    region: Option<&str>,
    ctx: &Ctx<'_>,
) -> Result<CloudConfig, Error> {
    let mut warnings = ctx.warnings.to_vec();
    let ours = match raw {
        Node::Map(m) => normalize(m.clone()),
        Node::Null => Map::new(),
        _ => {
            return Err(Error::invalid(
                name,
                format!("clouds.{name}"),
                "must be a mapping",
            ))
        }
    };
    let known = known_regions(name, &ours, &mut warnings)?;

    // Defaults (config/defaults.json: the two that matter here), then the cloud over them.
    let mut d = Draft {
        cloud: name.to_owned(),
        top: Map::from([
            ("auth_type".to_owned(), Node::Str("password".into())),
            ("interface".to_owned(), Node::Str("public".into())),
        ]),
        auth: Map::new(),
    };
    d.update(ours)?;
    let profile = d.top.get("profile").or_else(|| d.top.get("cloud"));
    if let Some(Node::Str(profile)) = profile {
        if profile != ctx.envvar_key {
            warnings.push(format!(
                "vendor profile {profile:?} is not supported: its settings (auth_url, regions, ...) \
                 are not applied; write them into the cloud"
            ));
        }
    }
    d.top.remove("cloud");

    let (region, values) = pick_region(name, known, region)?;
    d.top.remove("regions");
    d.update(normalize(values))?;

    d.fix_auth_plugin();
    d.fix_auth()?;
    d.fix_interface();
    d.handle_domain_id();

    let auth_type = match d.top.get("auth_type") {
        Some(Node::Str(s)) if !s.is_empty() && s != "None" => s.clone(),
        Some(Node::Str(_) | Node::Null) | None => "none".to_owned(),
        Some(_) => return Err(Error::invalid(name, "auth_type", "must be a string")),
    };
    let auth_type = AuthType::parse(&auth_type).ok_or_else(|| Error::UnsupportedAuthType {
        cloud: name.to_owned(),
        auth_type,
    })?;
    let identity_api_version = d.string("identity_api_version")?;
    if let Some(v) = &identity_api_version {
        if v.split('.').next() != Some("3") {
            return Err(Error::UnsupportedIdentityVersion {
                cloud: name.to_owned(),
                version: v.clone(),
            });
        }
    }
    d.validate_auth(auth_type);
    let auth = auth::build(name, auth_type, &d.auth, &mut warnings)?;

    let interface = d.interface("interface")?.unwrap_or(Interface::Public);
    let mut service_interfaces = BTreeMap::new();
    let service_keys: Vec<String> = d
        .top
        .keys()
        .filter(|k| k.ends_with("_interface"))
        .cloned()
        .collect();
    for key in service_keys {
        if let Some(i) = d.interface(&key)? {
            service_interfaces.insert(key.trim_end_matches("_interface").to_owned(), i);
        }
    }
    let tls = d.tls(&mut warnings)?;

    Ok(CloudConfig {
        name: name.to_owned(),
        source: ctx.source.clone(),
        auth_type,
        auth,
        region,
        interface,
        service_interfaces,
        verify: tls.verify,
        cacert: tls.cacert,
        cert: tls.cert,
        key: tls.key,
        identity_api_version,
        warnings,
    })
}

/// The regions a cloud lists: `regions:` (names or `{name, values}`), else `region_name` (a list, or
/// a string split on commas, which is deprecated).
fn known_regions(
    cloud: &str,
    ours: &Map,
    warnings: &mut Vec<String>,
) -> Result<Vec<(String, Map)>, Error> {
    let (key, entries) = match (ours.get("regions"), ours.get("region_name")) {
        (Some(Node::List(list)), _) => ("regions", list.clone()),
        (Some(Node::Null), _) | (None, None | Some(Node::Null)) => return Ok(Vec::new()),
        (Some(_), _) => return Err(Error::invalid(cloud, "regions", "must be a list")),
        (None, Some(Node::List(list))) => ("region_name", list.clone()),
        (None, Some(Node::Str(s))) => {
            let names: Vec<Node> = s.split(',').map(|r| Node::Str(r.to_owned())).collect();
            if names.len() > 1 {
                warnings.push(
                    "comma-separated region_name is deprecated; list the regions under `regions:`"
                        .into(),
                );
            }
            ("region_name", names)
        }
        (None, Some(_)) => return Err(Error::invalid(cloud, "region_name", "must be a string")),
    };
    entries
        .into_iter()
        .map(|entry| match entry {
            Node::Str(name) => Ok((name, Map::new())),
            Node::Map(mut m) if m.keys().all(|k| k == "name" || k == "values") => {
                let values = match m.remove("values") {
                    None | Some(Node::Null) => Map::new(),
                    Some(Node::Map(v)) => v,
                    Some(_) => {
                        return Err(Error::invalid(
                            cloud,
                            key,
                            "has `values` that are not a mapping",
                        ))
                    }
                };
                match m.remove("name") {
                    Some(Node::Str(name)) => Ok((name, values)),
                    _ => Err(Error::invalid(
                        cloud,
                        key,
                        "has an entry without a string `name`",
                    )),
                }
            }
            _ => Err(Error::invalid(
                cloud,
                key,
                "has an entry that is neither a name nor {name, values}",
            )),
        })
        .collect()
}

/// openstacksdk's `_get_region`: none asked → the first listed; asked and listed → it; asked and
/// not listed → error; asked and the cloud lists none → taken as given.
fn pick_region(
    cloud: &str,
    known: Vec<(String, Map)>,
    asked: Option<&str>,
) -> Result<(Option<String>, Map), Error> {
    let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
    match asked.filter(|r| !r.is_empty()) {
        None => Ok(known
            .into_iter()
            .next()
            .map_or((None, Map::new()), |(n, v)| (non_empty(n), v))),
        Some(asked) if known.is_empty() => Ok((Some(asked.to_owned()), Map::new())),
        Some(asked) => {
            let available = known.iter().map(|(n, _)| n.clone()).collect();
            known
                .into_iter()
                .find(|(n, _)| n == asked)
                .map(|(n, v)| (Some(n), v))
                .ok_or_else(|| Error::RegionNotFound {
                    cloud: cloud.to_owned(),
                    region: asked.to_owned(),
                    available,
                })
        }
    }
}

struct Tls {
    verify: bool,
    cacert: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

impl Draft {
    /// openstacksdk's `_auth_update`: `dict.update`, except that `auth:` is updated key by key.
    fn update(&mut self, mut new: Map) -> Result<(), Error> {
        match new.remove("auth") {
            None | Some(Node::Null) => {}
            Some(Node::Map(auth)) => self.auth.extend(auth),
            Some(_) => return Err(Error::invalid(&self.cloud, "auth", "must be a mapping")),
        }
        self.top
            .extend(new.into_iter().filter(|(_, v)| *v != Node::Null));
        Ok(())
    }

    /// `_fix_backwards_auth_plugin`: `auth_plugin` is an old name of `auth_type`, which wins.
    fn fix_auth_plugin(&mut self) {
        let old = self.top.remove("auth_plugin");
        if let Some(v) = self.top.remove("auth_type").or(old) {
            self.top.insert("auth_type".into(), v);
        }
    }

    /// `_fix_backwards_auth`: these keys go into `auth:` under their current name, a top-level value
    /// beating one in `auth:` and later names in each list beating earlier ones.
    fn fix_auth(&mut self) -> Result<(), Error> {
        const MAPPINGS: &[(&str, &[&str])] = &[
            ("domain_id", &["domain_id"]),
            ("domain_name", &["domain_name"]),
            ("user_domain_id", &["user_domain_id"]),
            ("user_domain_name", &["user_domain_name"]),
            ("project_domain_id", &["project_domain_id"]),
            ("project_domain_name", &["project_domain_name"]),
            ("token", &["auth_token", "token"]),
            ("passcode", &["passcode"]),
            ("project_id", &["tenant_id", "project_id"]),
            ("project_name", &["tenant_name", "project_name"]),
        ];
        for (target_key, names) in MAPPINGS {
            let mut target = None;
            for key in *names {
                for value in [self.auth.remove(*key), self.top.remove(*key)]
                    .into_iter()
                    .flatten()
                {
                    match value {
                        Node::Null => {}
                        Node::Str(s) => target = Some(s),
                        _ => return Err(Error::invalid(&self.cloud, *key, "must be a string")),
                    }
                }
            }
            if let Some(t) = target.filter(|t| !t.is_empty()) {
                self.auth.insert((*target_key).to_owned(), Node::Str(t));
            }
        }
        Ok(())
    }

    /// `_fix_backwards_interface`: `*endpoint_type` → `*interface` (the renamed key wins).
    fn fix_interface(&mut self) {
        let old: Vec<String> = self
            .top
            .keys()
            .filter(|k| k.ends_with("endpoint_type"))
            .cloned()
            .collect();
        for key in old {
            if let Some(v) = self.top.remove(&key) {
                self.top
                    .insert(key.replace("endpoint_type", "interface"), v);
            }
        }
    }

    /// `_handle_domain_id`: for a project-scoped cloud, `domain_id`/`domain_name` fill in
    /// `user_domain_*` and `project_domain_*` where unset and are then dropped; otherwise they stay
    /// in `auth:` (a domain scope).
    fn handle_domain_id(&mut self) {
        let scoped = ["project_id", "project_name"]
            .iter()
            .any(|k| self.top.contains_key(*k) || self.auth.contains_key(*k));
        for (target, copies) in [
            ("domain_id", ["user_domain_id", "project_domain_id"]),
            ("domain_name", ["user_domain_name", "project_domain_name"]),
        ] {
            if !scoped {
                if !self.auth.contains_key(target) {
                    if let Some(v) = self.top.remove(target) {
                        self.auth.insert(target.into(), v);
                    }
                }
                continue;
            }
            if let Some(v) = self.auth.get(target).cloned() {
                for key in copies {
                    self.auth.entry(key.into()).or_insert_with(|| v.clone());
                }
            }
            self.top.remove(target);
            self.auth.remove(target);
        }
    }

    /// `_validate_auth`: each plugin option takes its value from `auth:` if truthy there, else from
    /// the top level; all its spellings are then removed from both places.
    fn validate_auth(&mut self, auth_type: AuthType) {
        for (name, deprecated) in auth_type.options() {
            let find = |m: &Map| -> Option<Node> {
                std::iter::once(name)
                    .chain(deprecated.iter())
                    .find_map(|k| m.get(*k).cloned())
            };
            let winner = find(&self.auth)
                .filter(Node::truthy)
                .or_else(|| find(&self.top))
                .filter(Node::truthy);
            for key in std::iter::once(name).chain(deprecated.iter()) {
                self.auth.remove(*key);
                self.top.remove(*key);
            }
            if let Some(v) = winner {
                self.auth.insert((*name).to_owned(), v);
            }
        }
    }

    fn string(&self, key: &str) -> Result<Option<String>, Error> {
        match self.top.get(key) {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Str(s)) if s.is_empty() => Ok(None),
            Some(Node::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(Error::invalid(&self.cloud, key, "must be a string")),
        }
    }

    fn interface(&self, key: &str) -> Result<Option<Interface>, Error> {
        let Some(value) = self.string(key)? else {
            return Ok(None);
        };
        Interface::parse(&value).map(Some).ok_or_else(|| {
            Error::invalid(
                &self.cloud,
                key,
                format!("is {value:?}; use public, internal or admin"),
            )
        })
    }

    /// `get_requests_verify_args`, with `_handle_value_types`' string-to-bool rule for `insecure`.
    fn tls(&self, warnings: &mut Vec<String>) -> Result<Tls, Error> {
        let insecure = match self.top.get("insecure") {
            None | Some(Node::Null) => false,
            Some(Node::Bool(b)) => *b,
            // get_boolean: only the string "true" (any case) is true.
            Some(Node::Str(s)) => {
                if !s.eq_ignore_ascii_case("true") && !s.eq_ignore_ascii_case("false") {
                    warnings.push(format!(
                        "insecure: {s:?} counts as false (only \"true\" is true, as in \
                         openstacksdk), so TLS verification stays on"
                    ));
                }
                s.eq_ignore_ascii_case("true")
            }
            Some(_) => {
                return Err(Error::invalid(
                    &self.cloud,
                    "insecure",
                    "must be true or false",
                ))
            }
        };
        let mut cacert = self.string("cacert")?.map(PathBuf::from);
        let verify = match self.top.get("verify") {
            None | Some(Node::Null) => true,
            Some(Node::Bool(b)) => *b,
            // openstacksdk hands a string on to requests, which takes it as a CA bundle path; a
            // string that reads as a boolean (OS_VERIFY=false) is certainly not meant as one.
            Some(Node::Str(s)) => {
                let word = s.to_ascii_lowercase();
                if ["true", "false", "yes", "no", "on", "off", "1", "0", ""]
                    .contains(&word.as_str())
                {
                    return Err(Error::invalid(
                        &self.cloud,
                        "verify (OS_VERIFY)",
                        format!(
                            "is the string {s:?}, which openstacksdk passes on as a CA bundle path; \
                             write verify: false as a YAML boolean, or set insecure: true \
                             (OS_INSECURE=true) to turn verification off"
                        ),
                    ));
                }
                cacert.get_or_insert_with(|| PathBuf::from(s));
                true
            }
            Some(_) => {
                return Err(Error::invalid(
                    &self.cloud,
                    "verify",
                    "must be true or false",
                ))
            }
        };
        let verify = verify && !insecure;
        if !verify && cacert.take().is_some() {
            warnings.push(
                "cacert is set but TLS verification is off (verify: false or insecure: true): the \
                 server certificate will not be verified"
                    .into(),
            );
        }
        let cert = self.string("cert")?.map(PathBuf::from);
        let mut key = self.string("key")?.map(PathBuf::from);
        if cert.is_none() && key.take().is_some() {
            warnings.push("key is set without cert and is ignored".into());
        }
        Ok(Tls {
            verify,
            cacert,
            cert,
            key,
        })
    }
}
