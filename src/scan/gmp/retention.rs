//! Retention (`scan.gmp.keep`): which old `stinger-` tasks to delete, and deleting them with their
//! targets. Only names Stinger gave are touched; active tasks and the one in use never.

use super::plan::{is_own_name, NAME_PREFIX};
use super::{Error, Session, TaskInfo, TaskStatus};

fn is_active(status: &TaskStatus) -> bool {
    matches!(
        status,
        TaskStatus::Requested
            | TaskStatus::Queued
            | TaskStatus::Running
            | TaskStatus::Processing
            | TaskStatus::StopRequested
            | TaskStatus::DeleteRequested
    )
}

/// Which own tasks retention deletes so that at most `keep` remain. gvmd's task list carries no
/// creation time (gmp_xml's `TaskInfo` has none), so age cannot be judged: the in-use task and
/// active tasks are never deleted; tasks that never finished a report go first, then the rest in
/// name order. Deterministic, so repeated runs agree.
pub(super) fn retention_victims<'a>(
    tasks: &'a [TaskInfo],
    in_use: &str,
    keep: usize,
) -> Vec<&'a TaskInfo> {
    if keep == 0 {
        return Vec::new();
    }
    let own: Vec<&TaskInfo> = tasks.iter().filter(|t| is_own_name(&t.name)).collect();
    let Some(excess) = own.len().checked_sub(keep).filter(|&n| n > 0) else {
        return Vec::new();
    };
    let mut candidates: Vec<&TaskInfo> = own
        .into_iter()
        .filter(|t| t.id != in_use && !is_active(&t.status))
        .collect();
    candidates.sort_by(|a, b| {
        (a.last_report_id.is_some(), &a.name, &a.id).cmp(&(
            b.last_report_id.is_some(),
            &b.name,
            &b.id,
        ))
    });
    candidates.truncate(excess);
    candidates
}

pub(super) async fn retention(
    s: &mut Session,
    in_use: &str,
    keep: usize,
) -> Result<Vec<String>, Error> {
    let tasks = s.get_tasks_by_name(NAME_PREFIX).await?;
    let mut deleted = Vec::new();
    for t in retention_victims(&tasks, in_use, keep) {
        match s.delete_task(&t.id, true).await {
            Ok(()) => {
                tracing::info!(task = %t.name, task_id = %t.id, keep, "deleted old gvmd task (scan.gmp.keep)");
                deleted.push(t.name.clone());
                // Its target was created for it; gvmd refuses one still used by another task.
                if let Some(target) = &t.target_id {
                    match s.delete_target(target, true).await {
                        Ok(()) => {}
                        Err(e @ Error::Status { .. }) => {
                            tracing::info!(target_id = %target, error = %e, "kept the old task's target")
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e @ Error::Status { .. }) => {
                tracing::warn!(task = %t.name, error = %e, "could not delete old gvmd task")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}
