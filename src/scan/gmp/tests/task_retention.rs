//! Retention of stinger's own gvmd tasks: surplus ones are deleted with their targets, others'
//! tasks and tasks in use or still active are spared.

use crate::scan::gmp::retention::retention_victims;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_surplus_own_tasks_only() {
    let fake = FakeGvmd::start(Faults::default()).await;
    {
        let mut st = fake.state();
        st.seed_task("stinger-00000000000000a1", "Done", Some("r-a1"));
        st.seed_task("stinger-00000000000000a2", "Done", Some("r-a2"));
        st.seed_task("stinger-00000000000000a3", "Done", Some("r-a3"));
        st.seed_task("stinger-00000000000000b1", "New", None);
        st.seed_task("stinger-00000000000000c1", "Running", Some("r-c1"));
        st.seed_task("stinger-manual", "Done", Some("r-m"));
        st.seed_task("nightly", "Done", Some("r-n"));
    }
    let mut s = settings(unix(&fake));
    s.keep = 3;
    let (r, _) = run(&s).await;
    let o = r.expect("scan");
    // 6 own tasks (5 seeded + the new one), keep 3: the never-finished one, then by name.
    assert_eq!(
        o.deleted_tasks,
        vec![
            "stinger-00000000000000b1",
            "stinger-00000000000000a1",
            "stinger-00000000000000a2"
        ]
    );
    let st = fake.state();
    // The deleted tasks' targets went with them; the others' stayed.
    let mut targets: Vec<&str> = st.targets.iter().map(|t| t.name.as_str()).collect();
    targets.sort_unstable();
    for gone in &o.deleted_tasks {
        assert!(
            !targets.contains(&gone.as_str()),
            "{gone}'s target left: {targets:?}"
        );
    }
    assert!(targets.contains(&"stinger-00000000000000a3") && targets.contains(&"nightly"));
    let mut left: Vec<&str> = st.tasks.iter().map(|t| t.name.as_str()).collect();
    left.sort_unstable();
    let mut want = vec![
        "nightly",
        "stinger-00000000000000a3",
        "stinger-00000000000000c1",
        "stinger-manual",
        o.task_name.as_str(),
    ];
    want.sort_unstable();
    assert_eq!(left, want);
}

#[test]
fn retention_victims_spare_in_use_and_active_tasks() {
    let t = |id: &str, name: &str, status: TaskStatus, last: bool| TaskInfo {
        id: id.into(),
        name: name.into(),
        status,
        progress: -1,
        last_report_id: last.then(|| "r".to_owned()),
        current_report_id: None,
        target_id: None,
    };
    let tasks = vec![
        t("1", "stinger-0000000000000001", TaskStatus::Done, true),
        t("2", "stinger-0000000000000002", TaskStatus::Running, true),
        t("3", "stinger-0000000000000003", TaskStatus::Done, true),
        t("4", "stinger-XYZ", TaskStatus::Done, true),
    ];
    let ids = |v: Vec<&TaskInfo>| v.into_iter().map(|t| t.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(retention_victims(&tasks, "1", 1)), vec!["3"]);
    assert_eq!(ids(retention_victims(&tasks, "3", 2)), vec!["1"]);
    assert!(retention_victims(&tasks, "1", 3).is_empty());
    assert!(
        retention_victims(&tasks, "1", 0).is_empty(),
        "keep = 0 disables retention"
    );
}
