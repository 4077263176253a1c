//! Project and user names by id (`GET /v3/projects`, `GET /v3/users`, all pages), falling back to
//! what the session's own token tells when Keystone's policy forbids the listing.

use super::request::display_path;
use super::token::{NamedRef, Token};
use super::{Error, ServiceType, Session};
use serde_json::Value;
use std::collections::{HashMap, HashSet};

/// Project or user names by id. `complete: false` when Keystone's policy forbade the listing and
/// only what the session's own token tells is there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Names {
    pub map: HashMap<String, String>,
    pub complete: bool,
}

/// Pages followed when listing projects or users.
const MAX_NAME_PAGES: usize = 1000;

impl Session {
    /// Project names by id (`GET /v3/projects`, all pages). When policy forbids the listing (403):
    /// the session's own project, `complete: false`.
    pub async fn project_names(&self) -> Result<Names, Error> {
        self.names("projects", |t| t.project.clone()).await
    }

    /// User names by id (`GET /v3/users`, all pages). When policy forbids the listing (403): the
    /// session's own user, `complete: false`.
    pub async fn user_names(&self) -> Result<Names, Error> {
        self.names("users", |t| Some(t.user.clone())).await
    }

    async fn names(
        &self,
        collection: &str,
        own: impl Fn(&Token) -> Option<NamedRef>,
    ) -> Result<Names, Error> {
        let first = format!("/v3/{collection}");
        let mut next = first.clone();
        let mut seen = HashSet::new();
        let mut map = HashMap::new();
        for _ in 0..MAX_NAME_PAGES {
            let reply = match self.get_inner(ServiceType::Identity, &next, &[]).await {
                Ok(reply) => reply,
                Err(Error::Status { status: 403, .. }) => {
                    tracing::debug!(
                        cloud = %self.cloud.name,
                        "listing {collection} is forbidden by Keystone's policy; using the token's own"
                    );
                    let token = self.token().await?;
                    let map = own(&token)
                        .map(|r| (r.id.clone(), r.name.clone().unwrap_or(r.id)))
                        .into_iter()
                        .collect();
                    return Ok(Names {
                        map,
                        complete: false,
                    });
                }
                Err(e) => return Err(e),
            };
            let path = display_path(&next);
            let invalid = |reason: String| Error::Invalid {
                service: ServiceType::Identity,
                path: path.clone(),
                reason,
            };
            let page: Value = serde_json::from_slice(&reply.body)
                .map_err(|e| invalid(format!("not JSON: {e}")))?;
            let items = page
                .get(collection)
                .and_then(Value::as_array)
                .ok_or_else(|| invalid(format!("no `{collection}` list")))?;
            for item in items {
                let (Some(id), Some(name)) = (
                    item.get("id").and_then(Value::as_str),
                    item.get("name").and_then(Value::as_str),
                ) else {
                    return Err(invalid(format!(
                        "an entry of `{collection}` lacks a string id or name"
                    )));
                };
                map.insert(id.to_owned(), name.to_owned());
            }
            match page.pointer("/links/next").and_then(Value::as_str) {
                Some(link) if !link.is_empty() && !items.is_empty() => {
                    if !seen.insert(link.to_owned()) {
                        return Err(Error::Pagination {
                            service: ServiceType::Identity,
                            path: display_path(&first),
                            reason: format!("next link {} repeats", display_path(link)),
                        });
                    }
                    next = link.to_owned();
                }
                _ => {
                    return Ok(Names {
                        map,
                        complete: true,
                    })
                }
            }
        }
        Err(Error::Pagination {
            service: ServiceType::Identity,
            path: display_path(&first),
            reason: format!("more than {MAX_NAME_PAGES} pages"),
        })
    }
}
