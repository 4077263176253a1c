//! The `POST /v3/auth/tokens` request body for each [`Auth`]: password (by user id or name and
//! domain, optionally project-scoped) or application credential (by id, or by name and user).

use crate::inventory::openstack::clouds::{AppCredRef, Auth, DomainRef, ProjectScope, UserRef};
use serde_json::{json, Value};

/// The `POST /v3/auth/tokens` body.
pub(super) fn auth_body(auth: &Auth) -> Value {
    fn domain(d: &DomainRef) -> Value {
        match d {
            DomainRef::Id(id) => json!({ "id": id }),
            DomainRef::Name(name) => json!({ "name": name }),
        }
    }
    fn user(u: &UserRef) -> serde_json::Map<String, Value> {
        let v = match u {
            UserRef::Id(id) => json!({ "id": id }),
            UserRef::Name { name, domain: d } => json!({ "name": name, "domain": domain(d) }),
        };
        match v {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        }
    }
    match auth {
        Auth::Password {
            user: u,
            password,
            scope,
            ..
        } => {
            let mut user = user(u);
            user.insert("password".into(), json!(password.expose()));
            let mut body = json!({
                "auth": {
                    "identity": { "methods": ["password"], "password": { "user": user } }
                }
            });
            if let (Some(scope), Some(auth)) = (scope, body.get_mut("auth")) {
                let project = match scope {
                    ProjectScope::Id(id) => json!({ "id": id }),
                    ProjectScope::Name { name, domain: d } => {
                        json!({ "name": name, "domain": domain(d) })
                    }
                };
                auth["scope"] = json!({ "project": project });
            }
            body
        }
        Auth::ApplicationCredential { cred, secret, .. } => {
            let credential = match cred {
                AppCredRef::Id(id) => json!({ "id": id, "secret": secret.expose() }),
                AppCredRef::Name { name, user: u } => {
                    json!({ "name": name, "secret": secret.expose(), "user": user(u) })
                }
            };
            json!({
                "auth": {
                    "identity": {
                        "methods": ["application_credential"],
                        "application_credential": credential
                    }
                }
            })
        }
    }
}
