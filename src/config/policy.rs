//! `[policy]`: the expected ports and the rules that judge every open port, validated against the
//! configured target groups and clouds; which projects may declare their own expected ports; and the
//! exceptions (`[[policy.exceptions]]`, read in `policy/exceptions.rs`). Built as the judge takes them.

mod exceptions;

use super::file::{PolicyFile, TargetFile};
use super::openstack::OpenStackFile;
use super::Problem;
use crate::judge::{Policy, Rule};

/// Validate the rules (a usable name, something to decide, known groups) and build the policy.
pub(crate) fn build(
    f: &PolicyFile,
    targets: &[TargetFile],
    clouds: &[OpenStackFile],
    problems: &mut Vec<Problem>,
) -> Option<Policy> {
    let before = problems.len();
    let mut problem = |key: String, message: String| problems.push(Problem { key, message });
    for (i, r) in f.rules.iter().enumerate() {
        let key = format!("policy.rules[{i}]");
        if r.name.trim().is_empty()
            || r.name == crate::judge::policy::GLOBAL
            || r.name == crate::judge::policy::DEFAULT
            || r.name.starts_with(crate::judge::policy::METADATA_PREFIX)
        {
            problem(
                format!("{key}.name"),
                "must be set, not `global` or `default` and not start with `metadata:` (verdicts use those names)".into(),
            );
        }
        if r.allow.matcher.is_empty() && r.deny.matcher.is_empty() {
            problem(
                key.clone(),
                "has neither allow nor deny ports, so it can never decide".into(),
            );
        }
        for g in &r.groups {
            if !targets.iter().any(|t| &t.name == g) && !clouds.iter().any(|o| &o.name == g) {
                problem(
                    format!("{key}.groups"),
                    format!("names target group {g:?}, which is not configured"),
                );
            }
        }
    }
    for (i, p) in f.self_declare.iter().enumerate() {
        if p.trim().is_empty() {
            problem(
                format!("policy.self_declare[{i}]"),
                "is empty; name a project by id or name, or \"*\" for every project".into(),
            );
        }
    }
    let metadata_key = Some(f.metadata_key.trim().to_owned()).filter(|k| !k.is_empty());
    if metadata_key.is_none() && !f.self_declare.is_empty() {
        problem(
            "policy.self_declare".into(),
            "names projects, but policy.metadata_key is empty, so no VM can declare anything; set metadata_key (e.g. \"stinger_expected_ports\") or empty self_declare".into(),
        );
    }
    let exceptions = exceptions::build(&f.exceptions, problems);
    if problems.len() != before {
        return None;
    }
    let now = crate::model::now();
    for e in exceptions.iter().filter(|e| e.expired(now)) {
        tracing::warn!(
            exception = %e.name,
            expires = %e.expires_rfc3339(),
            "policy exception has expired and no longer applies; renew its expires or remove it"
        );
    }
    Some(Policy {
        rules: f
            .rules
            .iter()
            .map(|r| Rule {
                name: r.name.clone(),
                cidrs: r.cidrs.clone(),
                groups: r.groups.clone(),
                projects: r.projects.clone(),
                metadata: r.metadata.clone(),
                allow: r.allow.matcher.clone(),
                deny: r.deny.matcher.clone(),
            })
            .collect(),
        expected: f.expected.matcher.clone(),
        metadata_key,
        self_declare: f.self_declare.iter().map(|p| p.trim().to_owned()).collect(),
        exceptions,
    })
}

#[cfg(test)]
mod tests;
