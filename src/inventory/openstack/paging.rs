//! Walking a paginated OpenStack collection (Nova's `servers`, Neutron's lists): follow each page's
//! `rel=next` link, parse its items one at a time, and stop at a link or marker seen before (a
//! pagination loop) or after a page limit. A page that is not the collection, or lists an item that
//! cannot be used (no id, a bad address), is an error naming the service, path and item: an
//! inventory with a hole in it would report the missing VM as gone.

use super::api::{Api, Error, ServiceType};
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

/// One page of a collection, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Items left out, each as `<id or name>: <why>`.
    pub skipped: Vec<String>,
    /// The `rel=next` link of `<collection>_links` (an absolute URL).
    pub next: Option<String>,
    /// The id of the page's last item (the marker of the next page).
    pub last_id: Option<String>,
    /// How many items the page listed, skipped ones included.
    pub listed: usize,
}

/// Everything a paginated GET returned.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed<T> {
    pub items: Vec<T>,
    /// The service's clock when it answered the first page (its `Date` header).
    pub date: Option<jiff::Timestamp>,
}

/// How an item is named in errors: its id, else its name, else its position.
fn describe(item: &Value, index: usize) -> String {
    for key in ["id", "name"] {
        if let Some(s) = item
            .get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
        {
            return format!("{key} {s}");
        }
    }
    format!("item #{index}")
}

/// Parses a page `{"<collection>": [...], "<collection>_links": [...]}`. Items `parse` rejects are
/// listed in [`Page::skipped`]; a body that is not JSON or lacks the list is an error.
///
/// The list is read an item at a time: each item becomes a JSON tree only while `parse` reads it,
/// so a page of a thousand servers never exists as one tree beside its typed copy.
pub fn parse_page<T>(
    body: &[u8],
    collection: &str,
    parse: fn(&Value) -> Result<T, String>,
) -> Result<Page<T>, String> {
    let seed = PageSeed {
        collection,
        links: format!("{collection}_links"),
        parse,
    };
    let mut de = serde_json::Deserializer::from_slice(body);
    let parts = seed
        .deserialize(&mut de)
        .and_then(|parts| de.end().map(|()| parts))
        .map_err(|e| {
            if e.is_data() {
                format!("unexpected reply: {e}")
            } else {
                format!("not JSON: {e}")
            }
        })?;
    let list = parts
        .list
        .ok_or_else(|| format!("no `{collection}` list in the reply"))?;
    Ok(Page {
        items: list.items,
        skipped: list.skipped,
        next: parts.next,
        last_id: list.last_id,
        listed: list.listed,
    })
}

/// What [`PageSeed`] finds in a page.
struct PageParts<T> {
    list: Option<Items<T>>,
    next: Option<String>,
}

/// The collection's items, parsed as they are read.
struct Items<T> {
    items: Vec<T>,
    skipped: Vec<String>,
    last_id: Option<String>,
    listed: usize,
}

/// Reads the page object: the collection through [`ItemsSeed`], the `rel=next` href of its links,
/// and skips everything else unparsed.
struct PageSeed<'a, T> {
    collection: &'a str,
    links: String,
    parse: fn(&Value) -> Result<T, String>,
}

impl<'de, T> DeserializeSeed<'de> for PageSeed<'_, T> {
    type Value = PageParts<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, T> Visitor<'de> for PageSeed<'_, T> {
    type Value = PageParts<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "an object with a `{}` list", self.collection)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut parts = PageParts {
            list: None,
            next: None,
        };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == self.collection {
                parts.list = Some(map.next_value_seed(ItemsSeed {
                    collection: self.collection,
                    parse: self.parse,
                })?);
            } else if key == self.links.as_str() {
                let links: Value = map.next_value()?;
                parts.next = next_link(&links);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(parts)
    }
}

/// The `href` of the `rel=next` entry of a `<collection>_links` list.
fn next_link(links: &Value) -> Option<String> {
    links
        .as_array()?
        .iter()
        .find(|l| l.get("rel").and_then(Value::as_str) == Some("next"))?
        .get("href")?
        .as_str()
        .map(str::to_string)
}

/// Reads the collection's list an item at a time.
struct ItemsSeed<'a, T> {
    collection: &'a str,
    parse: fn(&Value) -> Result<T, String>,
}

impl<'de, T> DeserializeSeed<'de> for ItemsSeed<'_, T> {
    type Value = Items<T>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de, T> Visitor<'de> for ItemsSeed<'_, T> {
    type Value = Items<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a `{}` list", self.collection)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Items {
            items: Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096)),
            skipped: Vec::new(),
            last_id: None,
            listed: 0,
        };
        while let Some(raw) = seq.next_element::<Value>()? {
            match (self.parse)(&raw) {
                Ok(item) => out.items.push(item),
                Err(why) => out
                    .skipped
                    .push(format!("{}: {why}", describe(&raw, out.listed))),
            }
            out.last_id = raw.get("id").and_then(Value::as_str).map(str::to_string);
            out.listed += 1;
        }
        Ok(out)
    }
}

/// The path and query of a URL (`http://h:1/a?b` → `/a?b`), for errors: no host, no userinfo.
pub(super) fn path_of(url: &str) -> String {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return url.to_string();
    };
    match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_string(),
    }
}

fn is_absolute_http(url: &str) -> bool {
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    lower.starts_with("https://") || lower.starts_with("http://")
}

/// GETs `first` and every `rel=next` page after it, until a page has no next link or lists
/// nothing. A next link or last-item marker seen before, or a next link still there after
/// `max_pages` pages, is [`Error::Pagination`]; a page that does not parse, or lists an item
/// `parse` rejects, is [`Error::Invalid`].
pub(super) async fn paginate<T>(
    api: &impl Api,
    service: ServiceType,
    first: &str,
    collection: &str,
    headers: &[(&str, &str)],
    max_pages: u32,
    parse: fn(&Value) -> Result<T, String>,
) -> Result<Listed<T>, Error> {
    let max_pages = max_pages.max(1);
    let mut url = first.to_string();
    let mut seen_links: HashSet<String> = HashSet::new();
    let mut seen_markers: HashSet<String> = HashSet::new();
    let mut items = Vec::new();
    let mut page_no: u32 = 0;
    let mut date = None;
    loop {
        page_no += 1;
        let reply = api.get(service, &url, headers).await?;
        if page_no == 1 {
            date = reply.date();
        }
        let page = parse_page(&reply.body, collection, parse).map_err(|reason| Error::Invalid {
            service,
            path: path_of(&url),
            reason,
        })?;
        if let Some(first) = page.skipped.first() {
            let more = match page.skipped.len() {
                1 => String::new(),
                n => format!(" (and {} more)", n - 1),
            };
            return Err(Error::Invalid {
                service,
                path: path_of(&url),
                reason: format!("an item of `{collection}` cannot be used: {first}{more}"),
            });
        }
        items.extend(page.items);
        let next = match page.next {
            Some(next) if page.listed > 0 => next,
            _ => {
                items.shrink_to_fit(); // kept for the whole inventory: no spare capacity
                return Ok(Listed { items, date });
            }
        };
        let pagination = |reason: String| Error::Pagination {
            service,
            path: path_of(&url),
            reason,
        };
        if !is_absolute_http(&next) {
            return Err(Error::Invalid {
                service,
                path: path_of(&url),
                reason: format!(
                    "the next link of `{collection}_links` is not an absolute http(s) URL: {:?}",
                    path_of(&next)
                ),
            });
        }
        if let Some(marker) = page.last_id {
            if !seen_markers.insert(marker.clone()) {
                return Err(pagination(format!(
                    "page {page_no} of {collection} ends with {marker}, which already ended an \
                     earlier page"
                )));
            }
        }
        if !seen_links.insert(next.clone()) {
            return Err(pagination(format!(
                "page {page_no} of {collection} links to {}, which was already fetched",
                path_of(&next)
            )));
        }
        if page_no >= max_pages {
            return Err(pagination(format!(
                "still a next page of {collection} after {max_pages} pages; raise the page size or \
                 the page limit if the cloud really is that large"
            )));
        }
        url = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_for_errors() {
        assert_eq!(
            path_of("http://h:8774/v2.1/servers/detail?limit=1"),
            "/v2.1/servers/detail?limit=1"
        );
        assert_eq!(path_of("HTTPS://user:pw@h/x"), "/x");
        assert_eq!(path_of("https://h"), "/");
        assert_eq!(path_of("https://h?limit=1"), "/?limit=1");
        assert_eq!(path_of("/servers"), "/servers");
    }

    fn ids(v: &Value) -> Result<String, String> {
        v.get("id")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "no id".to_string())
    }

    #[test]
    fn pages_are_read_item_by_item_and_other_keys_ignored() {
        let body = br#"{"extra":{"deep":[1,2,{"x":null}]},"things":[{"id":"a"},{"name":"n"},{"id":"c","junk":[{}]}],"things_links":[{"rel":"self","href":"http://h/self"},{"rel":"next","href":"http://h/next?marker=c"}]}"#;
        let page = match parse_page(body, "things", ids) {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(page.items, ["a", "c"]);
        assert_eq!(page.skipped, ["name n: no id"]);
        assert_eq!(page.next.as_deref(), Some("http://h/next?marker=c"));
        assert_eq!(page.last_id.as_deref(), Some("c"));
        assert_eq!(page.listed, 3);
    }

    #[test]
    fn bad_pages_say_what_is_wrong() {
        let cases: [(&[u8], &str); 6] = [
            (b"nope", "not JSON"),
            (br#"{"things":[{"id":"a"}"#, "not JSON"),
            (br#"{"things":[]} trailing"#, "not JSON"),
            (b"{}", "no `things` list"),
            (br#"{"things":{}}"#, "unexpected reply"),
            (br#"[]"#, "unexpected reply"),
        ];
        for (body, want) in cases {
            match parse_page(body, "things", ids) {
                Err(e) => assert!(e.contains(want), "{:?}: {e}", String::from_utf8_lossy(body)),
                Ok(p) => panic!("{:?} parsed: {:?}", String::from_utf8_lossy(body), p.items),
            }
        }
    }
}
