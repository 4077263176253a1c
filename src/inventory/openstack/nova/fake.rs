//! A canned [`Api`](super::super::api::Api) for the unit tests of nova, neutron and diagnostics:
//! replies queued by path, and every request recorded.

use super::super::api::{Api, Error, Reply, ServiceType};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::Mutex;

/// What one request gets.
pub(crate) enum Canned {
    Ok(Vec<u8>),
    Status(u16, &'static str),
}

/// One request as the client made it.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub service: ServiceType,
    pub path: String,
    pub headers: Vec<(String, String)>,
}

#[derive(Default)]
pub(crate) struct FakeApi {
    replies: Mutex<HashMap<String, VecDeque<Canned>>>,
    requests: Mutex<Vec<Request>>,
}

impl FakeApi {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Queue a reply for `path` (as the client passes it: a path or an absolute URL).
    pub(crate) fn on(&self, path: &str, reply: Canned) -> &Self {
        if let Ok(mut r) = self.replies.lock() {
            r.entry(path.to_string()).or_default().push_back(reply);
        }
        self
    }

    pub(crate) fn ok(&self, path: &str, body: impl Into<Vec<u8>>) -> &Self {
        self.on(path, Canned::Ok(body.into()))
    }

    pub(crate) fn requests(&self) -> Vec<Request> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn answer(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Error> {
        if let Ok(mut r) = self.requests.lock() {
            r.push(Request {
                service,
                path: path.to_string(),
                headers: headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
        let next = self
            .replies
            .lock()
            .ok()
            .and_then(|mut r| r.get_mut(path).and_then(VecDeque::pop_front));
        match next {
            Some(Canned::Ok(body)) => Ok(Reply {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                body,
            }),
            Some(Canned::Status(status, message)) => Err(Error::Status {
                service,
                path: path.to_string(),
                status,
                message: message.to_string(),
            }),
            None => Err(Error::Status {
                service,
                path: path.to_string(),
                status: 404,
                message: "no canned reply".into(),
            }),
        }
    }
}

impl Api for FakeApi {
    fn get(
        &self,
        service: ServiceType,
        path: &str,
        headers: &[(&str, &str)],
    ) -> impl Future<Output = Result<Reply, Error>> + Send {
        let reply = self.answer(service, path, headers);
        async move { reply }
    }
}
