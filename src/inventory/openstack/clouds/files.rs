//! Where openstacksdk looks for clouds.yaml and secure.yaml, reading the first file that exists, and
//! the plain value tree that YAML and JSON both become (numbers turned into strings, as openstacksdk's
//! `normalize_keys` does).

use super::{Env, Error};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A mapping in a clouds file.
pub(super) type Map = BTreeMap<String, Node>;

/// A value in a clouds file. Deliberately not `Debug`: it holds passwords.
#[derive(Clone, PartialEq)]
pub(super) enum Node {
    Null,
    Bool(bool),
    /// Strings, and numbers as Python's `str()` would print them.
    Str(String),
    List(Vec<Node>),
    Map(Map),
}

impl Node {
    /// Python truthiness, which is what openstacksdk tests most values with.
    pub(super) fn truthy(&self) -> bool {
        match self {
            Node::Null => false,
            Node::Bool(b) => *b,
            Node::Str(s) => !s.is_empty(),
            Node::List(l) => !l.is_empty(),
            Node::Map(m) => !m.is_empty(),
        }
    }
}

/// The directories searched, in openstacksdk's order (`CONFIG_SEARCH_PATH`): cwd, platformdirs' user
/// config dir, `~/.config/openstack`, platformdirs' site config dir, `/etc/openstack`.
pub(super) fn search_dirs(env: &Env) -> Vec<PathBuf> {
    let mut dirs = vec![env.cwd.clone()];
    // platformdirs (Linux): $XDG_CONFIG_HOME/openstack unless unset or blank, else ~/.config/openstack.
    let xdg_home = env
        .xdg_config_home
        .as_ref()
        .filter(|p| !p.to_string_lossy().trim().is_empty());
    match (xdg_home, &env.home) {
        (Some(xdg), _) => dirs.push(xdg.join("openstack")),
        (None, Some(home)) => dirs.push(home.join(".config").join("openstack")),
        (None, None) => {}
    }
    // openstacksdk's own UNIX_CONFIG_HOME: $SNAP_REAL_HOME under snap, else ~.
    if let Some(home) = env.snap_real_home.as_ref().or(env.home.as_ref()) {
        dirs.push(home.join(".config").join("openstack"));
    }
    // platformdirs' site config dir with multipath=True: every $XDG_CONFIG_DIRS entry + /openstack,
    // joined with ':' into ONE path (so with several entries it names no real directory, exactly as in
    // openstacksdk); /etc/xdg/openstack when the variable is unset or blank.
    match env
        .xdg_config_dirs
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        Some(list) => dirs.push(PathBuf::from(
            list.split(':')
                .map(|d| Path::new(d).join("openstack").display().to_string())
                .collect::<Vec<_>>()
                .join(":"),
        )),
        None => dirs.push(env.etc.join("xdg").join("openstack")),
    }
    dirs.push(env.etc.join("openstack"));
    dirs.dedup();
    dirs
}

/// Every path tried for `stem` (`clouds` or `secure`), in order: the file named by `override_var`
/// first, then `<dir>/<stem>.yaml`, `.yml`, `.json` for each directory.
pub(super) fn candidates(env: &Env, stem: &str, override_var: &str) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    if let Some(file) = env.vars.get(override_var).filter(|v| !v.is_empty()) {
        paths.push(env.cwd.join(file));
    }
    for dir in search_dirs(env) {
        for ext in ["yaml", "yml", "json"] {
            paths.push(dir.join(format!("{stem}.{ext}")));
        }
    }
    paths
}

/// A file that was found and parsed. `doc` is `None` when it holds nothing (empty, `null`, `{}`):
/// openstacksdk still stops searching there and so does this.
pub(super) struct Found {
    pub(super) path: PathBuf,
    pub(super) doc: Option<Map>,
}

/// The first of `paths` that exists, parsed. Unlike openstacksdk, an unreadable or unparsable file is
/// an error rather than skipped (see the module docs of `clouds`).
pub(super) fn load_first(paths: &[PathBuf]) -> Result<Option<Found>, Error> {
    let Some(path) = paths.iter().find(|p| p.exists()) else {
        return Ok(None);
    };
    let bytes = std::fs::read(path).map_err(|source| Error::UnreadableFile {
        path: path.clone(),
        source,
    })?;
    let invalid = |reason: String| Error::InvalidFile {
        path: path.clone(),
        reason,
    };
    let text = String::from_utf8(bytes).map_err(|_| invalid("it is not UTF-8".into()))?;
    // openstacksdk picks the parser by the name's ending.
    let node = if path.to_string_lossy().ends_with("json") {
        let value: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        from_json(value)
    } else {
        let value: serde_norway::Value =
            serde_norway::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        from_yaml(value).map_err(invalid)?
    };
    let doc = match node {
        n if !n.truthy() => None,
        Node::Map(m) => Some(m),
        _ => return Err(invalid("the top level is not a mapping".into())),
    };
    Ok(Some(Found {
        path: path.clone(),
        doc,
    }))
}

fn from_yaml(value: serde_norway::Value) -> Result<Node, String> {
    use serde_norway::Value;
    Ok(match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => Node::Str(n.to_string()),
        Value::String(s) => Node::Str(s),
        Value::Sequence(items) => {
            Node::List(items.into_iter().map(from_yaml).collect::<Result<_, _>>()?)
        }
        Value::Mapping(mapping) => {
            let mut map = Map::new();
            for (k, v) in mapping {
                let key = match k {
                    Value::String(s) => s,
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return Err("a mapping key is not a plain scalar".into()),
                };
                map.insert(key, from_yaml(v)?);
            }
            Node::Map(map)
        }
        // PyYAML's safe_load refuses unknown tags too.
        Value::Tagged(tagged) => return Err(format!("unsupported YAML tag {}", tagged.tag)),
    })
}

fn from_json(value: serde_json::Value) -> Node {
    use serde_json::Value;
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(b),
        Value::Number(n) => Node::Str(n.to_string()),
        Value::String(s) => Node::Str(s),
        Value::Array(items) => Node::List(items.into_iter().map(from_json).collect()),
        Value::Object(obj) => Node::Map(obj.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

/// openstacksdk's `merge_clouds`: `new` over `old`, recursing into mappings (so `auth:` is merged key
/// by key and `new` wins).
pub(super) fn merge(old: &mut Map, new: Map) {
    for (key, value) in new {
        match (old.get_mut(&key), value) {
            (Some(Node::Map(old_map)), Node::Map(new_map)) => merge(old_map, new_map),
            (_, value) => {
                old.insert(key, value);
            }
        }
    }
}

/// openstacksdk's `normalize_keys`: `-` → `_` in every key of nested mappings (not inside lists).
pub(super) fn normalize(map: Map) -> Map {
    map.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Node::Map(m) => Node::Map(normalize(m)),
                other => other,
            };
            (k.replace('-', "_"), v)
        })
        .collect()
}
