//! The typed credentials a Keystone v3 client turns into a `POST /v3/auth/tokens` body, and how the
//! auth plugin's options (the `auth:` mapping after openstacksdk's fix-ups) become them, with
//! keystoneauth's checks (`loading/_plugins/identity/{generic,v3}.py`).

use super::files::{Map, Node};
use super::Error;

/// A password or application-credential secret. Prints as `***` (Debug and Display); read it with
/// [`Secret::expose`] only where it goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Secret {
        Secret(secret.into())
    }

    /// The secret itself, for the request body and nothing else.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// The keystoneauth plugins Stinger supports (`auth_type`, `OS_AUTH_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthType {
    /// The generic `password` plugin (openstacksdk's default): it GETs `auth_url` to discover the
    /// identity API versions and then authenticates against the v3 URL that lists.
    Password,
    /// `v3password`: no discovery; see [`Auth::v3_token_url`].
    V3Password,
    /// `v3applicationcredential`: no discovery; see [`Auth::v3_token_url`].
    V3ApplicationCredential,
}

impl AuthType {
    /// For error messages.
    pub const SUPPORTED: &'static str = "password, v3password, v3applicationcredential";

    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::Password => "password",
            AuthType::V3Password => "v3password",
            AuthType::V3ApplicationCredential => "v3applicationcredential",
        }
    }

    pub(super) fn parse(s: &str) -> Option<AuthType> {
        Some(match s {
            "password" => AuthType::Password,
            "v3password" => AuthType::V3Password,
            "v3applicationcredential" => AuthType::V3ApplicationCredential,
            _ => return None,
        })
    }

    /// Whether the plugin first discovers the identity version with a GET on `auth_url`.
    pub fn discovers_version(self) -> bool {
        self == AuthType::Password
    }

    /// The plugin's options as keystoneauth lists them (`-` written `_`), each with its deprecated
    /// names. openstacksdk moves these from the top level of a cloud into `auth:`.
    pub(super) fn options(self) -> &'static [(&'static str, &'static [&'static str])] {
        const GENERIC_PASSWORD: &[(&str, &[&str])] = &[
            ("auth_url", &[]),
            ("system_scope", &[]),
            ("domain_id", &[]),
            ("domain_name", &[]),
            ("project_id", &["tenant_id"]),
            ("project_name", &["tenant_name"]),
            ("project_domain_id", &[]),
            ("project_domain_name", &[]),
            ("trust_id", &[]),
            ("default_domain_id", &[]),
            ("default_domain_name", &[]),
            ("user_id", &[]),
            ("username", &["user_name"]),
            ("user_domain_id", &[]),
            ("user_domain_name", &[]),
            ("password", &[]),
        ];
        const V3_PASSWORD: &[(&str, &[&str])] = &[
            ("auth_url", &[]),
            ("system_scope", &[]),
            ("domain_id", &[]),
            ("domain_name", &[]),
            ("project_id", &[]),
            ("project_name", &[]),
            ("project_domain_id", &[]),
            ("project_domain_name", &[]),
            ("trust_id", &[]),
            ("user_id", &[]),
            ("username", &["user_name"]),
            ("user_domain_id", &[]),
            ("user_domain_name", &[]),
            ("password", &[]),
        ];
        const V3_APPLICATION_CREDENTIAL: &[(&str, &[&str])] = &[
            ("auth_url", &[]),
            ("system_scope", &[]),
            ("domain_id", &[]),
            ("domain_name", &[]),
            ("project_id", &[]),
            ("project_name", &[]),
            ("project_domain_id", &[]),
            ("project_domain_name", &[]),
            ("trust_id", &[]),
            ("user_id", &[]),
            ("username", &["user_name"]),
            ("user_domain_id", &[]),
            ("user_domain_name", &[]),
            ("application_credential_secret", &[]),
            ("application_credential_id", &[]),
            ("application_credential_name", &[]),
        ];
        match self {
            AuthType::Password => GENERIC_PASSWORD,
            AuthType::V3Password => V3_PASSWORD,
            AuthType::V3ApplicationCredential => V3_APPLICATION_CREDENTIAL,
        }
    }
}

impl std::fmt::Display for AuthType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain, by id (`{"id": ..}`) or by name (`{"name": ..}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainRef {
    Id(String),
    Name(String),
}

/// A user: by id alone, or by name within a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserRef {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// A project scope: `{"project": {"id": ..}}` or `{"project": {"name": .., "domain": ..}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectScope {
    Id(String),
    Name { name: String, domain: DomainRef },
}

/// An application credential: by id, or by name plus its owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppCredRef {
    Id(String),
    Name { name: String, user: UserRef },
}

/// What to authenticate with. Debug output shows secrets as `***`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// `"methods": ["password"]`. `scope: None` asks for an unscoped token (no service catalog).
    Password {
        auth_url: String,
        user: UserRef,
        password: Secret,
        scope: Option<ProjectScope>,
    },
    /// `"methods": ["application_credential"]`; never sent with a scope, the token gets the
    /// credential's own project.
    ApplicationCredential {
        auth_url: String,
        cred: AppCredRef,
        secret: Secret,
    },
}

impl Auth {
    pub fn auth_url(&self) -> &str {
        match self {
            Auth::Password { auth_url, .. } | Auth::ApplicationCredential { auth_url, .. } => {
                auth_url
            }
        }
    }

    /// Where keystoneauth's v3 plugins POST: `auth_url` without trailing `/`, plus `/auth/tokens` when
    /// it ends in `v3`, else plus `/v3/auth/tokens`. The generic `password` plugin discovers instead
    /// (see [`AuthType::discovers_version`]); this is its fallback when the GET gives nothing better.
    pub fn v3_token_url(&self) -> String {
        let base = self.auth_url().trim_end_matches('/');
        if base.ends_with("v3") {
            format!("{base}/auth/tokens")
        } else {
            format!("{base}/v3/auth/tokens")
        }
    }
}

/// Reads the `auth:` mapping of one cloud.
struct Keys<'a> {
    cloud: &'a str,
    auth_type: AuthType,
    auth: &'a Map,
}

impl<'a> Keys<'a> {
    /// A string option; empty and null count as unset (keystoneauth tests truthiness). Never puts the
    /// value into an error.
    fn get(&self, key: &str) -> Result<Option<&'a str>, Error> {
        match self.auth.get(key) {
            None | Some(Node::Null) => Ok(None),
            Some(Node::Str(s)) if s.is_empty() => Ok(None),
            Some(Node::Str(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid(
                self.cloud,
                format!("auth.{key}"),
                "must be a string",
            )),
        }
    }

    fn missing(&self, keys: &[&str]) -> Error {
        let missing = keys
            .iter()
            .map(|k| format!("auth.{k} (OS_{})", k.to_uppercase()))
            .collect::<Vec<_>>()
            .join(" or ");
        Error::MissingAuth {
            cloud: self.cloud.to_owned(),
            auth_type: self.auth_type.as_str(),
            missing,
        }
    }

    fn required(&self, key: &str) -> Result<&'a str, Error> {
        self.get(key)?.ok_or_else(|| self.missing(&[key]))
    }

    /// `<prefix>_domain_id` / `_name`; the generic plugin falls back to `default_domain_*` for each
    /// separately, and an id beats a name when the body is built.
    fn domain(&self, prefix: &str) -> Result<Option<DomainRef>, Error> {
        let generic = self.auth_type == AuthType::Password;
        let fallback = |key: &str| -> Result<Option<&'a str>, Error> {
            if generic {
                self.get(&format!("default_domain_{key}"))
            } else {
                Ok(None)
            }
        };
        let id = match self.get(&format!("{prefix}_domain_id"))? {
            Some(id) => Some(id),
            None => fallback("id")?,
        };
        let name = match self.get(&format!("{prefix}_domain_name"))? {
            Some(name) => Some(name),
            None => fallback("name")?,
        };
        Ok(match (id, name) {
            (Some(id), _) => Some(DomainRef::Id(id.to_owned())),
            (None, Some(name)) => Some(DomainRef::Name(name.to_owned())),
            (None, None) => None,
        })
    }

    /// The user (`user_id` beats `username`). The v3 loaders also insist on a user domain whenever a
    /// username is given at all; the generic loader only when it is used.
    fn user(&self) -> Result<Option<UserRef>, Error> {
        let domain = self.domain("user")?;
        let username = self.get("username")?;
        let need_domain = || self.missing(&["user_domain_name", "user_domain_id"]);
        if username.is_some() && domain.is_none() && self.auth_type != AuthType::Password {
            return Err(need_domain());
        }
        if let Some(id) = self.get("user_id")? {
            return Ok(Some(UserRef::Id(id.to_owned())));
        }
        match (username, domain) {
            (Some(name), Some(domain)) => Ok(Some(UserRef::Name {
                name: name.to_owned(),
                domain,
            })),
            (Some(_), None) => Err(need_domain()),
            (None, _) => Ok(None),
        }
    }

    /// The first key present among the scopes Stinger cannot use.
    fn other_scope(&self) -> Result<Option<(&'static str, &'static str)>, Error> {
        for (key, what) in [
            ("domain_id", "domain-scoped"),
            ("domain_name", "domain-scoped"),
            ("trust_id", "trust-scoped"),
            ("system_scope", "system-scoped"),
        ] {
            if self.get(key)?.is_some() {
                return Ok(Some((key, what)));
            }
        }
        Ok(None)
    }

    fn auth_url(&self) -> Result<String, Error> {
        let url = self.required("auth_url")?;
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(Error::invalid(
                self.cloud,
                "auth.auth_url (OS_AUTH_URL)",
                format!(
                    "must be an http:// or https:// URL, got {:?}",
                    super::error::redact_url(url)
                ),
            ));
        }
        Ok(url.to_owned())
    }
}

/// Builds the typed credentials from the final `auth:` mapping. Warnings go to `warnings`.
pub(super) fn build(
    cloud: &str,
    auth_type: AuthType,
    auth: &Map,
    warnings: &mut Vec<String>,
) -> Result<Auth, Error> {
    let keys = Keys {
        cloud,
        auth_type,
        auth,
    };
    let auth_url = keys.auth_url()?;
    match auth_type {
        AuthType::Password | AuthType::V3Password => {
            let user = keys
                .user()?
                .ok_or_else(|| keys.missing(&["username", "user_id"]))?;
            let password = Secret::new(keys.required("password")?);
            let project_domain = keys.domain("project")?;
            let project_name = keys.get("project_name")?;
            let need_domain = || keys.missing(&["project_domain_name", "project_domain_id"]);
            // The v3 loaders refuse a project name without its domain even next to a project id.
            if project_name.is_some() && project_domain.is_none() && !auth_type.discovers_version()
            {
                return Err(need_domain());
            }
            let scope = match (keys.get("project_id")?, project_name) {
                (Some(id), _) => Some(ProjectScope::Id(id.to_owned())),
                (None, Some(name)) => Some(ProjectScope::Name {
                    name: name.to_owned(),
                    domain: project_domain.ok_or_else(need_domain)?,
                }),
                (None, None) => None,
            };
            if let Some((key, what)) = keys.other_scope()? {
                return Err(Error::UnsupportedScope {
                    cloud: cloud.to_owned(),
                    key,
                    what,
                });
            }
            if scope.is_none() {
                warnings.push(
                    "no project is set (auth.project_name or auth.project_id): the token will be \
                     unscoped and carry no service catalog"
                        .into(),
                );
            }
            Ok(Auth::Password {
                auth_url,
                user,
                password,
                scope,
            })
        }
        AuthType::V3ApplicationCredential => {
            let secret = Secret::new(keys.required("application_credential_secret")?);
            let user = keys.user()?;
            let cred = match (
                keys.get("application_credential_id")?,
                keys.get("application_credential_name")?,
            ) {
                (Some(id), _) => AppCredRef::Id(id.to_owned()),
                (None, Some(name)) => AppCredRef::Name {
                    name: name.to_owned(),
                    user: user.ok_or_else(|| keys.missing(&["user_id", "username"]))?,
                },
                (None, None) => {
                    return Err(
                        keys.missing(&["application_credential_id", "application_credential_name"])
                    )
                }
            };
            let mut ignored = Vec::new();
            for key in [
                "project_id",
                "project_name",
                "domain_id",
                "domain_name",
                "trust_id",
                "system_scope",
            ] {
                if keys.get(key)?.is_some() {
                    ignored.push(format!("auth.{key}"));
                }
            }
            if !ignored.is_empty() {
                warnings.push(format!(
                    "{} ignored: an application credential token is always scoped to the \
                     credential's own project",
                    ignored.join(", ")
                ));
            }
            Ok(Auth::ApplicationCredential {
                auth_url,
                cred,
                secret,
            })
        }
    }
}
