//! `[shard]`: this agent's place in a fleet that splits one inventory (`count` agents, this one
//! `index`, the others' base URLs in `peers`). Validated here; the hashing is
//! [`crate::inventory::shard`].

use super::Problem;
use crate::inventory::shard::{self, Shard};
use serde::{Deserialize, Serialize};

/// `[shard]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShardFile {
    /// How many agents share the inventory.
    pub count: u32,
    /// This agent's shard: a number, or `"hostname"` for the hostname's trailing ordinal.
    pub index: IndexField,
    /// Every agent's base URL, by shard index (empty: the API names the owner instead of
    /// redirecting).
    pub peers: Vec<String>,
}

impl Default for ShardFile {
    fn default() -> Self {
        ShardFile {
            count: 1,
            index: IndexField::Number(0),
            peers: Vec::new(),
        }
    }
}

impl ShardFile {
    /// No sharding configured (left out of the printed configuration).
    pub fn is_default(&self) -> bool {
        *self == ShardFile::default()
    }
}

/// `shard.index`: a number or `"hostname"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IndexField {
    Number(u32),
    Name(String),
}

impl IndexField {
    /// Parse a `--shard.index` value: a number or `hostname`.
    pub fn parse(s: &str) -> IndexField {
        s.trim().parse().map_or_else(
            |_| IndexField::Name(s.trim().to_string()),
            IndexField::Number,
        )
    }
}

/// Validate `[shard]` and build it; `hostname` is read only when the index asks for it.
pub(crate) fn build(f: &ShardFile, problems: &mut Vec<Problem>) -> Option<Shard> {
    build_with(f, shard::hostname, problems)
}

fn build_with(
    f: &ShardFile,
    hostname: impl FnOnce() -> Option<String>,
    problems: &mut Vec<Problem>,
) -> Option<Shard> {
    let before = problems.len();
    let mut problem = |key: &str, message: String| {
        problems.push(Problem {
            key: format!("shard.{key}"),
            message,
        })
    };
    if f.count == 0 {
        problem("count", "must be at least 1".into());
    }
    let index = match &f.index {
        IndexField::Number(n) => Some(*n),
        IndexField::Name(n) if n == "hostname" => match hostname() {
            Some(h) => match shard::ordinal(&h) {
                Some(i) => Some(i),
                None => {
                    problem("index", format!("\"hostname\": the hostname {h:?} does not end in -<number> (as a StatefulSet's pods do); set the index as a number or with --shard.index"));
                    None
                }
            },
            None => {
                problem("index", "\"hostname\": cannot read this machine's hostname; set the index as a number or with --shard.index".into());
                None
            }
        },
        IndexField::Name(n) => {
            problem(
                "index",
                format!("{n:?} is neither a number nor \"hostname\""),
            );
            None
        }
    };
    if let Some(i) = index {
        if f.count > 0 && i >= f.count {
            problem(
                "index",
                format!(
                    "{i} is not below shard.count ({}); shards are numbered from 0",
                    f.count
                ),
            );
        }
    }
    if !f.peers.is_empty() && f.peers.len() != f.count as usize {
        problem(
            "peers",
            format!(
                "lists {} agents but shard.count is {}: give every agent's base URL in shard order, or none",
                f.peers.len(),
                f.count
            ),
        );
    }
    for p in &f.peers {
        if !(p.starts_with("http://") || p.starts_with("https://"))
            || p.contains(char::is_whitespace)
        {
            problem(
                "peers",
                format!("{p:?} is not a base URL such as http://stinger-0.stinger:7864"),
            );
        }
    }
    if problems.len() != before {
        return None;
    }
    Some(Shard {
        index: index?,
        count: f.count,
        peers: f.peers.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ShardFile {
        toml::from_str(text).unwrap()
    }

    fn built(f: &ShardFile, host: Option<&str>) -> Result<Shard, Vec<Problem>> {
        let mut problems = Vec::new();
        build_with(f, || host.map(str::to_string), &mut problems).ok_or(problems)
    }

    #[test]
    fn defaults_to_one_shard() {
        let s = built(&ShardFile::default(), None).unwrap();
        assert_eq!(s, Shard::default());
        assert!(ShardFile::default().is_default());
    }

    #[test]
    fn index_from_number_or_hostname() {
        let s = built(&file("count = 3\nindex = 2"), None).unwrap();
        assert_eq!((s.index, s.count), (2, 3));
        let f = file("count = 3\nindex = \"hostname\"");
        assert_eq!(built(&f, Some("stinger-1")).unwrap().index, 1);
        let e = built(&f, Some("scanner")).unwrap_err();
        assert_eq!(e[0].key, "shard.index");
        assert!(e[0].message.contains("scanner"));
        assert!(built(&f, None).is_err());
        assert_eq!(IndexField::parse("4"), IndexField::Number(4));
        assert_eq!(
            IndexField::parse("hostname"),
            IndexField::Name("hostname".into())
        );
    }

    #[test]
    fn bad_settings_are_reported_together() {
        let e = built(
            &file("count = 2\nindex = 2\npeers = [\"http://a\", \"http://b\", \"c\"]"),
            None,
        )
        .unwrap_err();
        let keys: Vec<&str> = e.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(keys, ["shard.index", "shard.peers", "shard.peers"]);
        assert!(built(&file("count = 0"), None).is_err());
        assert!(built(&file("index = \"three\""), None).is_err());
        assert!(toml::from_str::<ShardFile>("counts = 2").is_err());
        let ok = built(
            &file("count = 2\nindex = 1\npeers = [\"http://a:7864\", \"https://b\"]"),
            None,
        )
        .unwrap();
        assert_eq!(ok.peer(0), Some("http://a:7864"));
    }
}
