//! Errors of the clouds.yaml loader. Each names the file, cloud and key involved and says what to do;
//! none of them ever carries a secret (no value of `password` or `application_credential_secret`, and
//! no URL user-info).

use std::path::PathBuf;

/// Why no [`CloudConfig`](super::CloudConfig) could be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(
        "no OpenStack credentials found: none of {} exists and no OS_* variables are set; write a \
         clouds.yaml to one of those paths, point OS_CLIENT_CONFIG_FILE at one, or set OS_AUTH_URL, \
         OS_USERNAME, OS_PASSWORD, OS_USER_DOMAIN_NAME, OS_PROJECT_NAME and OS_PROJECT_DOMAIN_NAME \
         (or OS_AUTH_TYPE=v3applicationcredential, OS_AUTH_URL, OS_APPLICATION_CREDENTIAL_ID and \
         OS_APPLICATION_CREDENTIAL_SECRET)",
        join_paths(.searched)
    )]
    NoConfig { searched: Vec<PathBuf> },

    #[error(
        "{} defines no clouds and no OS_* variables are set; add a cloud under `clouds:` or set \
         OS_AUTH_URL and the other OS_* credentials",
        .path.display()
    )]
    NoClouds { path: PathBuf },

    #[error(
        "cannot read {}: {source}; openstacksdk would skip it and use the next file in the search \
         path, Stinger stops instead so that it never runs with credentials you did not mean; fix \
         the permissions or remove the file",
        .path.display()
    )]
    UnreadableFile {
        path: PathBuf,
        source: std::io::Error,
    },

    #[error(
        "{} is not a valid clouds file: {reason}; openstacksdk would skip it and use the next file \
         in the search path, Stinger stops instead; fix or remove the file",
        .path.display()
    )]
    InvalidFile { path: PathBuf, reason: String },

    #[error(
        "cloud {name:?} not found in {origin}; clouds defined: {} (names are case-sensitive)",
        join(.available)
    )]
    CloudNotFound {
        name: String,
        available: Vec<String>,
        /// The file(s) and/or environment the clouds came from.
        origin: String,
    },

    #[error(
        "{origin} defines several clouds ({}) and none is selected; set OS_CLOUD or name the cloud \
         in Stinger's configuration",
        join(.available)
    )]
    NoCloudSelected {
        available: Vec<String>,
        origin: String,
    },

    #[error(
        "{} defines a cloud named {name:?}, which is also the name of the cloud built from OS_* \
         variables (OS_CLOUD_NAME, default \"envvars\"); rename that cloud in the file or set \
         OS_CLOUD_NAME to another name",
        .path.as_deref().map_or_else(|| "the clouds file".into(), |p| p.display().to_string())
    )]
    CloudNameClash { name: String, path: Option<PathBuf> },

    #[error("cloud {cloud:?}: {key} {reason}")]
    InvalidValue {
        cloud: String,
        key: String,
        reason: String,
    },

    #[error("cloud {cloud:?} (auth_type {auth_type}) lacks {missing}")]
    MissingAuth {
        cloud: String,
        auth_type: &'static str,
        /// The key(s) and their OS_* equivalents, e.g. `auth.password (OS_PASSWORD)`.
        missing: String,
    },

    #[error(
        "cloud {cloud:?}: auth_type {auth_type:?} (OS_AUTH_TYPE) is not supported; use one of {}",
        super::AuthType::SUPPORTED
    )]
    UnsupportedAuthType { cloud: String, auth_type: String },

    #[error(
        "cloud {cloud:?}: identity_api_version {version:?} (OS_IDENTITY_API_VERSION) is not \
         supported; Stinger speaks Keystone v3 only: set it to 3 or remove it"
    )]
    UnsupportedIdentityVersion { cloud: String, version: String },

    #[error(
        "cloud {cloud:?}: auth.{key} (OS_{}) asks for a {what} token; Stinger needs a \
         project-scoped one: set auth.project_name with auth.project_domain_name (or \
         auth.project_id) and remove auth.{key}",
        .key.to_uppercase()
    )]
    UnsupportedScope {
        cloud: String,
        key: &'static str,
        what: &'static str,
    },

    #[error(
        "cloud {cloud:?} has no region {region:?}; its regions are {} (names are case-sensitive)",
        join(.available)
    )]
    RegionNotFound {
        cloud: String,
        region: String,
        available: Vec<String>,
    },

    #[error("{} OpenStack clouds failed to load: {}", .errors.len(), join_errors(.errors))]
    Several { errors: Vec<Error> },
}

impl Error {
    /// Stable label for `stinger_errors_total{kind}`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NoConfig { .. } => "no_config",
            Error::NoClouds { .. } => "no_clouds",
            Error::UnreadableFile { .. } => "unreadable_file",
            Error::InvalidFile { .. } => "invalid_file",
            Error::CloudNotFound { .. } => "cloud_not_found",
            Error::NoCloudSelected { .. } => "no_cloud_selected",
            Error::CloudNameClash { .. } => "cloud_name_clash",
            Error::InvalidValue { .. } => "invalid_value",
            Error::MissingAuth { .. } => "missing_auth",
            Error::UnsupportedAuthType { .. } => "unsupported_auth_type",
            Error::UnsupportedIdentityVersion { .. } => "unsupported_identity_version",
            Error::UnsupportedScope { .. } => "unsupported_scope",
            Error::RegionNotFound { .. } => "region_not_found",
            Error::Several { .. } => "several",
        }
    }

    pub(super) fn invalid(cloud: &str, key: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::InvalidValue {
            cloud: cloud.to_owned(),
            key: key.into(),
            reason: reason.into(),
        }
    }
}

fn join(names: &[String]) -> String {
    if names.is_empty() {
        return "(none)".into();
    }
    names.join(", ")
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_errors(errors: &[Error]) -> String {
    errors
        .iter()
        .map(|e| e.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A URL fit for a message: user-info (`user:password@`) replaced by `***@`.
pub(super) fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***{}", &rest[at..]),
        None => url.to_owned(),
    }
}
