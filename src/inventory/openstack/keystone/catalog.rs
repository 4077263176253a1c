//! The service catalog of a token and where a request goes: the endpoint for a service, interface and
//! region ([`select_endpoint`]), and the URL of a request path — absolute URLs only to `auth_url`'s or
//! the catalog's origins, so the token never goes elsewhere.

use super::request::display_path;
use super::token::Token;
use super::{http, Error, Interface, Origin, ServiceType, Session};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub(super) struct CatalogEntry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Deserialize)]
struct Endpoint {
    interface: String,
    url: String,
    #[serde(default)]
    region_id: Option<String>,
    #[serde(default)]
    region: Option<String>,
}

impl Endpoint {
    fn region(&self) -> Option<&str> {
        self.region_id.as_deref().or(self.region.as_deref())
    }
}

/// The endpoint URL (without trailing `/`) for a service, interface and optional region.
pub(super) fn select_endpoint(
    catalog: &[CatalogEntry],
    service: ServiceType,
    interface: Interface,
    region: Option<&str>,
) -> Result<String, Error> {
    let entries: Vec<&CatalogEntry> = catalog
        .iter()
        .filter(|e| e.kind == service.as_str())
        .collect();
    let found = entries.iter().flat_map(|e| &e.endpoints).find(|ep| {
        ep.interface == interface.as_str() && region.is_none_or(|r| ep.region() == Some(r))
    });
    if let Some(ep) = found {
        return Ok(ep.url.trim_end_matches('/').to_owned());
    }
    let available = if catalog.is_empty() {
        "the catalog is empty (an unscoped token has none: set project_name or project_id)".into()
    } else if entries.is_empty() {
        let mut types: Vec<&str> = catalog.iter().map(|e| e.kind.as_str()).collect();
        types.sort_unstable();
        types.dedup();
        format!("no {service} service; the catalog has {}", types.join(", "))
    } else {
        let list: Vec<String> = entries
            .iter()
            .flat_map(|e| &e.endpoints)
            .map(|ep| format!("{} in {}", ep.interface, ep.region().unwrap_or("no region")))
            .collect();
        http::truncate(&list.join(", "), 400)
    };
    Err(Error::NoEndpoint {
        service,
        interface: interface.as_str(),
        region: region.map(str::to_owned),
        available,
    })
}

impl Session {
    /// The URL a request goes to: the service endpoint plus `path`, or `path` itself when absolute and
    /// at a known origin.
    pub(super) fn url_for(
        &self,
        token: &Token,
        service: ServiceType,
        path: &str,
    ) -> Result<reqwest::Url, Error> {
        let shown = display_path(path);
        let invalid = |reason: String| Error::Invalid {
            service,
            path: shown.clone(),
            reason,
        };
        if path.starts_with("http://") || path.starts_with("https://") {
            let url = reqwest::Url::parse(path).map_err(|e| invalid(format!("bad URL: {e}")))?;
            let origin = Origin::of(&url);
            let known = self.auth_origin.as_ref() == Some(&origin)
                || token
                    .catalog
                    .iter()
                    .flat_map(|entry| &entry.endpoints)
                    .any(|ep| Origin::parse(&ep.url).as_ref() == Some(&origin));
            if !known {
                return Err(invalid(format!(
                    "link to {origin}, which is neither auth_url nor an endpoint of the catalog; \
                     the token is not sent there"
                )));
            }
            return Ok(url);
        }
        if !path.starts_with('/') {
            return Err(invalid(
                "request path must start with / or be an http(s) URL".into(),
            ));
        }
        let endpoint = select_endpoint(
            &token.catalog,
            service,
            self.interface_for(service),
            self.cloud.region.as_deref(),
        )?;
        let mut path = path;
        if service == ServiceType::Identity && endpoint.ends_with("/v3") {
            if let Some(rest) = path.strip_prefix("/v3") {
                if rest.is_empty() || rest.starts_with(['/', '?']) {
                    path = rest;
                }
            }
        }
        reqwest::Url::parse(&format!("{endpoint}{path}"))
            .map_err(|e| invalid(format!("endpoint {endpoint} plus path is no URL: {e}")))
    }
}
