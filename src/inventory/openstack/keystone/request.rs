//! One request to a service with the session's token: its URL, the `X-Auth-Token` header, one
//! re-authentication after a 401, the body under its cap, and error messages scrubbed of the
//! password, secret and token.

use super::{http, Error, Reply, ServiceType, Session};
use crate::inventory::openstack::clouds::Auth;
use crate::inventory::openstack::http::BodyError;

impl Session {
    /// A reply body under the cap.
    pub(super) async fn body(
        &self,
        service: ServiceType,
        path: &str,
        resp: &mut reqwest::Response,
    ) -> Result<Vec<u8>, Error> {
        http::read_body(resp, self.options.max_body_bytes)
            .await
            .map_err(|e| match e {
                BodyError::TooLarge(cap) => Error::Invalid {
                    service,
                    path: path.to_owned(),
                    reason: format!("reply body larger than {cap} bytes"),
                },
                BodyError::Http(e) => http::transport_error(
                    service,
                    path,
                    self.options.timeout,
                    "reading the reply: ",
                    e,
                ),
            })
    }

    /// `text` with the password or secret, and `token`, replaced by `***`.
    pub(super) fn scrub(&self, text: &str, token: Option<&str>) -> String {
        let secret = match &self.cloud.auth {
            Auth::Password { password, .. } => password.expose(),
            Auth::ApplicationCredential { secret, .. } => secret.expose(),
        };
        let mut text = text.to_owned();
        for s in [Some(secret), token].into_iter().flatten() {
            if s.len() >= 4 {
                text = text.replace(s, "***");
            }
        }
        text
    }

    pub(super) async fn get_inner(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        let shown = display_path(path);
        let mut retried = false;
        loop {
            let token = self.token().await?;
            let url = self.url_for(&token, service, path)?;
            let mut request = self
                .client
                .get(url)
                .header("X-Auth-Token", &token.value)
                .header("Accept", "application/json");
            for (name, value) in headers {
                request = request.header(*name, *value);
            }
            let mut resp = request
                .send()
                .await
                .map_err(|e| http::transport_error(service, &shown, self.options.timeout, "", e))?;
            let status = resp.status().as_u16();
            if status == 401 && !retried {
                tracing::debug!(cloud = %self.cloud.name, %service, path = %shown, "401 from the service; authenticating again");
                retried = true;
                self.discard(&token).await;
                continue;
            }
            let headers = resp
                .headers()
                .iter()
                .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
                .collect();
            let body = self.body(service, &shown, &mut resp).await?;
            if !(200..300).contains(&status) {
                return Err(Error::Status {
                    service,
                    path: shown,
                    status,
                    message: self.scrub(&http::error_message(&body, status), Some(&token.value)),
                });
            }
            return Ok(Reply {
                status,
                headers,
                body,
            });
        }
    }
}

/// The path and query of a URL or request path, for errors: never the host or user info.
pub(super) fn display_path(path: &str) -> String {
    match reqwest::Url::parse(path) {
        Ok(url) if path.starts_with("http://") || path.starts_with("https://") => {
            match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            }
        }
        _ => path.to_owned(),
    }
}
