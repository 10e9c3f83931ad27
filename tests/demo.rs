//! `sfetl demo`, README's first command, on a fresh folder: exact figures at each step.

use std::process::Command;

#[test]
fn demo_runs_the_whole_pipeline_and_reports_each_step() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sfetl"))
        .args(["demo", "--dir", dir.path().join("demo").to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(
            "8 streams: Account, Attachment, Contact, Lead, Opportunity, Score__c, Task, User"
        ),
        "{text}"
    );
    assert!(
        text.contains("rows: Account 1000, Contact 3000, Lead 2000;"),
        "{text}"
    );
    assert!(
        text.contains("rows: Account 0, Contact 25, Lead 10 "),
        "{text}"
    );
    let parts = std::fs::read_dir(dir.path().join("demo/export/Contact"))
        .unwrap()
        .count();
    assert_eq!(parts, 2, "one sync folder per read");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("demo/config.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
