//! Exposition formats: prometheus-client writes OpenMetrics; Prometheus' classic text format 0.0.4
//! (what `promtool check metrics` and older scrapers read) differs in counter family names, `# UNIT`,
//! `_created` samples and `# EOF`. This converts one to the other, and picks a format from `Accept`.

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the Prometheus text format.
pub const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the client prefers OpenMetrics: it must be listed with a q above zero and at least that
/// of any text/plain or wildcard entry.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    let (mut om, mut other) = (0.0f32, 0.0f32);
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.parse::<f32>().ok())
            .unwrap_or(1.0);
        if media == "application/openmetrics-text" {
            om = om.max(q);
        } else if media == "text/plain" || media == "*/*" || media == "text/*" {
            other = other.max(q);
        }
    }
    om > 0.0 && om >= other
}

/// Rewrite OpenMetrics text as Prometheus text format 0.0.4.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut pending_help: Option<(&str, &str)> = None;
    let mut counters: Vec<&str> = Vec::new();
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            pending_help = Some((name, help));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (family, kind) = match kind {
                "counter" => {
                    counters.push(name);
                    (format!("{name}_total"), "counter")
                }
                "gauge" | "histogram" | "summary" => (name.to_string(), kind),
                "info" => (format!("{name}_info"), "gauge"),
                _ => (name.to_string(), "untyped"),
            };
            if let Some((hname, help)) = pending_help.take() {
                if hname == name {
                    out.push_str(&format!("# HELP {family} {help}\n"));
                }
            }
            out.push_str(&format!("# TYPE {family} {kind}\n"));
            continue;
        }
        let sample_name = line.split(['{', ' ']).next().unwrap_or("");
        if counters
            .iter()
            .any(|c| sample_name.strip_prefix(c).is_some_and(|s| s == "_created"))
        {
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_units_and_eof_are_rewritten() {
        let om = "# HELP stinger_scan_probes TCP probes.\n# TYPE stinger_scan_probes counter\n\
                  stinger_scan_probes_total{result=\"open\"} 3\n\
                  stinger_scan_probes_created{result=\"open\"} 1.7e9\n\
                  # HELP stinger_scan_interval_seconds Interval.\n# TYPE stinger_scan_interval_seconds gauge\n\
                  # UNIT stinger_scan_interval_seconds seconds\nstinger_scan_interval_seconds{stage=\"discovery\"} 900\n# EOF\n";
        let text = openmetrics_to_text(om);
        assert_eq!(
            text,
            "# HELP stinger_scan_probes_total TCP probes.\n# TYPE stinger_scan_probes_total counter\n\
             stinger_scan_probes_total{result=\"open\"} 3\n\
             # HELP stinger_scan_interval_seconds Interval.\n# TYPE stinger_scan_interval_seconds gauge\n\
             stinger_scan_interval_seconds{stage=\"discovery\"} 900\n"
        );
    }

    #[test]
    fn negotiation_follows_q_values() {
        let prom = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert!(wants_openmetrics(Some(prom)));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some(
            "application/openmetrics-text;q=0,text/plain"
        )));
        assert!(wants_openmetrics(Some("application/openmetrics-text")));
    }
}
