//! `[policy]`: the expected ports and the rules that judge every open port, validated against the
//! configured target groups and clouds, built as the judge takes them.

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
    if problems.len() != before {
        return None;
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
        metadata_key: Some(f.metadata_key.trim().to_owned()).filter(|k| !k.is_empty()),
    })
}
